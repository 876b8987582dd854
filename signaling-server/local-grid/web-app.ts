/**
 * Builds the web app (web/) into dist/web with vite's JS API and the repository's
 * vite.config.ts (another config builds another app: the test kit's pages). `ensureWebApp` is
 * for the commands that serve the app (`infermesh demo`, `bench grid`): it builds only when
 * dist/web is missing or older than a source it is built from.
 */
import { readdir, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DIST_WEB = join(REPO_ROOT, 'dist', 'web');
/** What the bundle is made of: the pages, the code they import, and the build's own settings. */
const SOURCE_DIRS = ['web', 'shared', 'worker'];
const SOURCE_FILES = ['vite.config.ts', 'package-lock.json'];
/** A page every build writes: without it dist/web is not a build. */
const DONOR_PAGE = join(DIST_WEB, 'donor', 'index.html');

export async function buildWebApp(configFile = join(REPO_ROOT, 'vite.config.ts')): Promise<void> {
  const started = performance.now();
  // vite is a dev dependency: only loaded when a build is needed.
  const { build } = await import('vite');
  await build({ configFile, logLevel: 'warn' });
  console.error(`built ${relative(REPO_ROOT, configFile)} in ${Math.round(performance.now() - started)} ms`);
}

/** Modification times of the files under `dir`, less those `skip` names. */
async function mtimes(dir: string, skip: (name: string) => boolean): Promise<number[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  const files = entries.filter((e) => e.isFile() && !skip(e.name)).map((e) => join(e.parentPath, e.name));
  return Promise.all(files.map(async (f) => (await stat(f)).mtimeMs));
}

/** Why dist/web needs a build ('missing', or the first newer source), or null when it is current. */
export async function webAppStaleness(): Promise<string | null> {
  if (!(await stat(DONOR_PAGE).catch(() => null))) return 'dist/web is missing';
  // A build rewrites every file (emptyOutDir), so its oldest file dates the build.
  const built = Math.min(...(await mtimes(DIST_WEB, () => false)));
  for (const dir of SOURCE_DIRS) {
    const newest = Math.max(0, ...(await mtimes(join(REPO_ROOT, dir), (name) => name.endsWith('.test.ts') || name.endsWith('.md'))));
    if (newest > built) return `${dir}/ changed since dist/web was built`;
  }
  for (const file of SOURCE_FILES) {
    const info = await stat(join(REPO_ROOT, file)).catch(() => null);
    if (info && info.mtimeMs > built) return `${file} changed since dist/web was built`;
  }
  return null;
}

/** Builds dist/web when it is missing or stale; returns why it built, or null when it did not. */
export async function ensureWebApp(): Promise<string | null> {
  const reason = await webAppStaleness();
  if (reason) {
    console.error(`building the web app: ${reason}`);
    await buildWebApp();
  }
  return reason;
}
