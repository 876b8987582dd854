/**
 * The SDK as an app gets it: packed by `npm pack` (its prepack builds dist/ with tsdown) and
 * installed from the tarball into a fresh project outside the repository with a plain
 * `npm install`: no .npmrc, and none of this repository's npm settings in the environment (npm
 * hands its config to scripts as npm_config_* variables, which would carry the repository's
 * onnxruntime-node install skip into the child). The e2e test and `bench sdk` both use it.
 */
import { execFile } from 'node:child_process';
import { cp, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from './model-fixtures.ts';

const run = promisify(execFile);

export const SDK_DIR = join(REPO_ROOT, 'packages', 'sdk');
/** The app files copied into the fresh project: a Node script, a page for vite and esbuild, a typed use. */
export const CONSUMER_FILES = join(REPO_ROOT, 'testkit', 'sdk-consumer');

/** This process's environment without npm's own variables, so a child npm reads only its defaults. */
export function plainEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) && k !== 'INIT_CWD'));
  return { ...env, ...extra };
}

/** npm, as the person at the terminal runs it (the one on PATH), with the Node running this. */
export async function npm(args: string[], cwd: string): Promise<{ stdout: string; stderr: string }> {
  return run('npm', args, { cwd, env: plainEnv(), maxBuffer: 64 << 20 });
}

export interface PackedSdk {
  tarball: string;
  bytes: number;
}

export async function packSdk(destination: string): Promise<PackedSdk> {
  const { stdout } = await npm(['pack', '--json', '--pack-destination', destination], SDK_DIR);
  const [packed] = JSON.parse(stdout.slice(stdout.indexOf('['))) as { filename: string }[];
  const tarball = join(destination, packed.filename);
  return { tarball, bytes: (await stat(tarball)).size };
}

export interface Installed {
  seconds: number;
  /** every file under node_modules, in bytes */
  nodeModulesBytes: number;
  /** packages npm put in node_modules (its `added N packages`) */
  packages: number;
  /** packages in the tree with install scripts (preinstall, install, postinstall), by name@version */
  installScripts: string[];
}

/** A fresh project in `dir` (the consumer files copied in) with the tarball installed: `npm install <tarball> ...more`. */
export async function installConsumer(dir: string, tarball: string, more: string[] = []): Promise<Installed> {
  await cp(CONSUMER_FILES, dir, { recursive: true });
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'sdk-consumer', private: true, type: 'module' }, null, 2));
  const started = performance.now();
  const { stdout } = await npm(['install', '--no-audit', '--no-fund', tarball, ...more], dir);
  const seconds = (performance.now() - started) / 1000;
  const added = Number(/added (\d+) packages?/.exec(stdout)?.[1] ?? NaN);
  const tree = await treeOf(join(dir, 'node_modules'));
  return { seconds, packages: added, ...tree };
}

async function treeOf(nodeModules: string): Promise<Pick<Installed, 'nodeModulesBytes' | 'installScripts'>> {
  let nodeModulesBytes = 0;
  const installScripts: string[] = [];
  for (const entry of await readdir(nodeModules, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    nodeModulesBytes += (await stat(path)).size;
    // A package's own manifest sits right below a node_modules folder (or a scope in one).
    if (entry.name === 'package.json' && /node_modules\/(@[^/]+\/)?[^/@]+$/.test(entry.parentPath)) {
      const pkg = JSON.parse(await readFile(path, 'utf8').catch(() => '{}')) as { name?: string; version?: string; scripts?: Record<string, string> };
      if (['preinstall', 'install', 'postinstall'].some((s) => pkg.scripts?.[s])) installScripts.push(`${pkg.name}@${pkg.version}`);
    }
  }
  return { nodeModulesBytes, installScripts: [...new Set(installScripts)].sort() };
}
