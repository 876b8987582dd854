/**
 * The SDK as a developer installs it (issue 20): `npm pack` of packages/sdk, installed from the
 * tarball into a fresh project outside the repository with a plain `npm install`, generates
 * through a running grid the same greedy text as `infermesh generate` runs locally: from Node
 * (the oldest Node the package supports, and this one), from a page vite built and from an
 * esbuild bundle, both in headless Chromium on an origin of their own. Its declarations type an
 * app's TypeScript. Slow (an npm install from the registry): `npm run test:slow`.
 */
import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build as viteBuild } from 'vite';
import { build as esbuild } from 'esbuild';
import type { Browser } from 'playwright-core';
import { openCheckpoint } from '../../cli/open-checkpoint.ts';
import { startNodeDonor } from '../../cli/node-donor.ts';
import type { Donor } from '../../web/donor/donor.ts';
import { compileTo, REPO_ROOT, removeTempDirs, STORIES_260K, tempDir, TOK_512 } from '../../testkit/model-fixtures.ts';
import { installConsumer, npm, packSdk, plainEnv } from '../../testkit/sdk-package.ts';
import type { Installed, PackedSdk } from '../../testkit/sdk-package.ts';
import { startGridServer } from '../../signaling-server/grid-server.ts';
import type { GridServer } from '../../signaling-server/grid-server.ts';
import { launchChromium } from '../../signaling-server/local-grid/chromium.ts';
import { startStaticServer } from '../../signaling-server/http/static-files.ts';
import type { StaticServer } from '../../signaling-server/http/static-files.ts';

const run = promisify(execFile);
const PROMPT = 'Once upon a time';
const MAX_TOKENS = 24;
/** The oldest Node the package's engines field allows. */
const OLDEST_NODE = '22';

let app: string;
let packed: PackedSdk;
let installed: Installed;
let server: GridServer;
let donor: Donor;
let pages: StaticServer;
let browser: Browser;
let expected: string;

beforeAll(async () => {
  const { dir } = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'f32');
  const work = await tempDir('infermesh-sdk-package-');
  packed = await packSdk(work);
  app = join(work, 'app');
  await mkdir(app);
  installed = await installConsumer(app, packed.tarball);
  console.log(`[sdk package] tarball ${packed.bytes} B; npm install ${installed.seconds.toFixed(1)} s, ${installed.packages} packages, node_modules ${(installed.nodeModulesBytes / 2 ** 20).toFixed(0)} MiB`);
  // What the repository's own command prints, run locally: the text every app must get.
  const local = await run(process.execPath, [join(REPO_ROOT, 'bin', 'infermesh.js'), 'generate', '--model', dir, '--prompt', PROMPT, '--max-tokens', String(MAX_TOKENS), '--temperature', '0']);
  expected = local.stdout.replace(/\n$/, '');
  server = await startGridServer({ host: '127.0.0.1', port: 0, modelDir: dir });
  donor = await startNodeDonor({ serverUrl: server.url, threads: 1, payoutKeyFile: join(work, 'donor.key') }, { update() {}, throughput() {}, error() {} });
  await server.coordinator.waitForCoverage(1, 60_000);
  // The app's page, built twice as an app would: by vite, and by esbuild into esbuild/.
  await viteBuild({ root: app, logLevel: 'error', configFile: false, build: { outDir: join(app, 'dist'), target: 'es2023' } });
  await esbuild({ entryPoints: [join(app, 'main.js')], bundle: true, format: 'esm', platform: 'browser', target: 'es2023', outfile: join(app, 'dist', 'esbuild', 'app.js'), logLevel: 'error' });
  const built = await readdir(join(app, 'dist', 'assets'), { withFileTypes: true });
  const sizes = await Promise.all(built.map(async (f) => `${f.name} ${(await stat(join(f.parentPath, f.name))).size} B`));
  const bundled = (await stat(join(app, 'dist', 'esbuild', 'app.js'))).size;
  console.log(`[sdk package] the vite page: ${sizes.join(', ')}; the esbuild bundle (not minified): ${bundled} B`);
  const html = (await readFile(join(app, 'index.html'), 'utf8')).replace('./main.js', './app.js');
  await writeFile(join(app, 'dist', 'esbuild', 'index.html'), html);
  pages = await startStaticServer({ routes: { '/': join(app, 'dist') } });
  browser = await launchChromium();
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await pages?.close();
  await donor?.stop();
  await server?.close();
  await removeTempDirs();
});

/** The app's Node script under `node`: its JSON line. */
async function generateFromNode(node: string, runtime?: string): Promise<{ text: string; node: string; progress: { loaded: number; total: number } }> {
  const args = [join(app, 'generate.mjs'), server.url, PROMPT, String(MAX_TOKENS), ...(runtime ? [runtime] : [])];
  const { stdout } = await run(node, args, { cwd: app, env: plainEnv(), timeout: 120_000 });
  return JSON.parse(stdout.trim().split('\n').at(-1)!);
}

async function generateFromPage(path: string): Promise<string> {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  // What the page downloads from the grid server: the client's share of the model and onnxruntime's WASM.
  const fetched = new Map<string, number>();
  page.on('response', (r) => {
    if (r.url().startsWith(server.url)) void r.body().then((b) => fetched.set(new URL(r.url()).pathname, b.length), () => undefined);
  });
  try {
    await page.goto(new URL(path, pages.url).href);
    await page.waitForFunction('window.sdkLoaded === true');
    const text = await page.evaluate(([url, prompt, n]) => (window as unknown as { generate(u: string, p: string, n: number): Promise<string> }).generate(url, prompt, n), [server.url, PROMPT, MAX_TOKENS] as const);
    console.log(`[sdk package] ${path} fetched from the grid server: ${[...fetched].map(([p, n]) => `${p.split('/').at(-1)} ${n} B`).join(', ')}`);
    return text;
  } catch (err) {
    throw new Error(`${(err as Error).message}\npage errors: ${errors.join('\n') || 'none'}`);
  } finally {
    await page.close();
  }
}

describe('the SDK package, installed from its tarball into a fresh project', () => {
  it('installs with no native download: onnxruntime-node stays out, and no package of its tree downloads at install', async () => {
    expect(expected.length).toBeGreaterThan(20);
    const tree = JSON.parse((await npm(['ls', '--all', '--json'], app)).stdout) as { dependencies: Record<string, { version: string }> };
    expect(Object.keys(tree.dependencies)).toEqual(['@infermesh/sdk']);
    expect(installed.installScripts.filter((p) => p.startsWith('onnxruntime-node@'))).toEqual([]);
    // protobufjs 7 (onnxruntime-web's) only compares version schemes; nothing else may run at install.
    expect(installed.installScripts.filter((p) => !p.startsWith('protobufjs@7.'))).toEqual([]);
  });

  it(`generates the text of infermesh generate from Node ${process.versions.node.split('.')[0]} on onnxruntime-web's WASM, and reports its download`, async () => {
    const answer = await generateFromNode(process.execPath);
    expect(answer.text).toBe(expected);
    expect(answer.progress.loaded).toBe(answer.progress.total);
    expect(answer.progress.total).toBeGreaterThan(0);
  });

  it("refuses runtime 'native' by name where the app has not installed onnxruntime-node", async () => {
    const failed = await generateFromNode(process.execPath, 'native').then(() => null, (err: { stderr: string }) => err.stderr);
    expect(failed).toMatch(/UsageError: runtime 'native' needs onnxruntime-node: npm install onnxruntime-node/);
  });

  it('gives the same text to the repository\'s own `infermesh generate --url`, which runs the same package', async () => {
    const { stdout } = await run(process.execPath, [join(REPO_ROOT, 'bin', 'infermesh.js'), 'generate', '--url', server.url, '--prompt', PROMPT, '--max-tokens', String(MAX_TOKENS), '--temperature', '0'], { timeout: 120_000 });
    expect(stdout.replace(/\n$/, '')).toBe(expected);
  });

  it(`generates the same text from Node ${OLDEST_NODE}, the oldest the package supports`, async () => {
    const tools = await tempDir('infermesh-node22-');
    await writeFile(join(tools, 'package.json'), '{"private":true}');
    await npm(['install', '--no-audit', '--no-fund', `node@${OLDEST_NODE}`], tools);
    const answer = await generateFromNode(join(tools, 'node_modules', '.bin', 'node'));
    expect(answer.node).toMatch(new RegExp(`^v${OLDEST_NODE}\\.`));
    expect(answer.text).toBe(expected);
  });

  it('generates the same text from a page vite built, on an origin of its own', async () => {
    expect(await generateFromPage('/')).toBe(expected);
  });

  it('generates the same text from an esbuild bundle for the browser (no Node built-ins in it)', async () => {
    expect(await generateFromPage('/esbuild/')).toBe(expected);
  });

  it("types an app's TypeScript with its declarations", async () => {
    await expect(run(process.execPath, [join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', app])).resolves.toMatchObject({ stdout: '' });
  });
});
