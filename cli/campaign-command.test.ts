/**
 * `infermesh campaign` as a researcher types it, against a real grid server: create from a YAML
 * spec (id, join link, dashboard link), list, status, export to a file (CSV, Parquet) and the
 * summary to stdout, a static report, stop; a bad spec is
 * refused before anything is sent, naming the field; a spec the grid cannot run (a model it
 * does not serve) is refused by the server, naming the field too. `create --serve` runs the
 * grid server in the command's own process: the campaign is on it (and in its data folder)
 * and Ctrl-C stops it cleanly; a bad spec fails before it starts, and --serve with --url is refused.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from './open-checkpoint.ts';
import { compileTo, REPO_ROOT, removeTempDirs, STORIES_260K, tempDir, TOK_512 } from '../testkit/model-fixtures.ts';
import { startGridServer } from '../signaling-server/grid-server.ts';
import type { GridServer } from '../signaling-server/grid-server.ts';
import { openCampaignStore } from '../signaling-server/campaigns/campaign-store.ts';
import { createGatewayKeys } from '../signaling-server/api-keys/gateway-keys.ts';
import { openKeyStore } from '../signaling-server/api-keys/key-store.ts';

const run = promisify(execFile);
const BIN = join(REPO_ROOT, 'bin', 'infermesh.js');
const infermesh = (...args: string[]) => run(process.execPath, [BIN, ...args]);
const failure = (...args: string[]) => infermesh(...args).then(() => { throw new Error('it succeeded'); }, (err: { code: number; stderr: string }) => err);

let server: GridServer;
let dir: string;
let modelDir: string;
beforeAll(async () => {
  const compiled = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'f32');
  modelDir = compiled.dir;
  server = await startGridServer({ host: '127.0.0.1', port: 0, modelDir: compiled.dir });
  dir = await tempDir();
}, 120_000);
afterAll(async () => {
  await server?.close();
  await removeTempDirs();
});

const spec = (model: string, providers = '[wasm, webgpu]') => `name: smoke
models: [{ package: ${model} }]
workloads:
  - { name: decode, promptTokens: 4, decodeTokens: 16 }
providers: ${providers}
repetitions: 2
target: { devices: 3 }
endsAt: "${new Date(Date.now() + 3_600_000).toISOString()}"
`;

describe('infermesh campaign', () => {
  it('creates, lists, shows, exports and stops a campaign', async () => {
    const file = join(dir, 'spec.yaml');
    await writeFile(file, spec(server.manifest.name));
    const { stdout } = await infermesh('campaign', 'create', file, '--url', server.url);
    const id = /campaign (cmp_[0-9a-f]{16}) created/.exec(stdout)?.[1];
    expect(id).toBeDefined();
    expect(stdout).toContain(`join link (visitors open it): ${server.url}donor/?campaign=${id}`);
    expect(stdout).toContain(`dashboard: ${server.url}campaign/?id=${id}`);
    expect((await infermesh('campaign', 'list', '--url', server.url)).stdout).toContain(`${id}  "smoke"  running; 0 of 3 devices; 0 runs stored, 0 refused`);
    expect((await infermesh('campaign', 'status', id!, '--url', server.url)).stdout).toContain('tabs: 0 (0 finished, 0 running, 0 stragglers)');
    const status = JSON.parse((await infermesh('campaign', 'status', id!, '--url', server.url, '--json')).stdout);
    expect(status.spec.workloads[0]).toMatchObject({ name: 'decode', batch: 1, layers: 'all' });
    const out = join(dir, 'runs.csv');
    await infermesh('campaign', 'export', id!, '--format', 'csv', '--out', out, '--url', server.url);
    expect((await readFile(out, 'utf8')).split('\r\n')[0]).toMatch(/^campaign,peer_id,/);
    const parquet = join(dir, 'runs.parquet');
    await infermesh('campaign', 'export', id!, '--format', 'parquet', '--out', parquet, '--url', server.url);
    // Parquet's magic number at both ends.
    const bytes = await readFile(parquet);
    expect([bytes.subarray(0, 4).toString(), bytes.subarray(-4).toString()]).toEqual(['PAR1', 'PAR1']);
    const summary = JSON.parse((await infermesh('campaign', 'export', id!, '--format', 'summary', '--url', server.url)).stdout);
    expect(summary).toMatchObject({ campaign: { id }, devices: [], tabs: [], failures: [] });
    const report = join(dir, 'report.html');
    await infermesh('campaign', 'report', id!, '--out', report, '--url', server.url);
    const html = await readFile(report, 'utf8');
    expect(html).toContain('<h1>smoke</h1>');
    expect(html.match(/<svg /g)).toHaveLength(3);
    expect((await infermesh('campaign', 'stop', id!, '--url', server.url)).stdout).toContain(`${id}  "smoke"  stopped`);
  });

  it('refuses a bad spec before sending it, and one the grid cannot run, each naming the field', async () => {
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, spec(server.manifest.name, '[wasm, tpu]'));
    const local = await failure('campaign', 'create', bad, '--url', 'http://127.0.0.1:9');
    expect(local.stderr).toContain(`${bad}: campaign spec: providers[1]: `);
    const unknown = join(dir, 'unknown.yaml');
    await writeFile(unknown, spec('gpt-5'));
    const remote = await failure('campaign', 'create', unknown, '--url', server.url);
    expect(remote.stderr).toContain('campaign spec: models[0].package: this grid serves no model "gpt-5"');
    expect((await failure('campaign', 'status', 'cmp_0000000000000000', '--url', server.url)).stderr).toContain('no campaign "cmp_0000000000000000" on this grid');
  });

  it("sends the grid's API key where the grid requires one, from --key or INFERMESH_API_KEY", async () => {
    const keyStore = openKeyStore(join(await tempDir(), 'keys.sqlite'));
    const { secret } = keyStore.create('researcher', {});
    const keyed = await startGridServer({ host: '127.0.0.1', port: 0, modelDir }, { keys: createGatewayKeys({ required: true }, { keys: keyStore }) });
    try {
      const file = join(dir, 'keyed.yaml');
      await writeFile(file, spec(keyed.manifest.name));
      expect((await failure('campaign', 'create', file, '--url', keyed.url)).stderr).toContain('(pass it with --key or INFERMESH_API_KEY; ');
      const { stdout } = await run(process.execPath, [BIN, 'campaign', 'create', file, '--url', keyed.url], { env: { ...process.env, INFERMESH_API_KEY: secret } });
      const id = /campaign (cmp_[0-9a-f]{16}) created/.exec(stdout)![1];
      expect((await infermesh('campaign', 'stop', id, '--url', keyed.url, '--key', secret)).stdout).toContain(`${id}  "smoke"  stopped`);
    } finally {
      await keyed.close();
      keyStore.close();
    }
  });
});

describe('infermesh campaign create --serve', () => {
  // No local anvil and no local donor: the server alone, as light as serve starts.
  const serveEnv = { ...process.env, INFERMESH_CHAIN: 'off', INFERMESH_DONORS: '0' };

  it('runs the grid server in its own process, creates the campaign on it, and stops cleanly on Ctrl-C', async () => {
    const file = join(dir, 'serve.yaml');
    await writeFile(file, spec(server.manifest.name));
    const data = join(dir, 'serve-data');
    const child = spawn(process.execPath, [BIN, 'campaign', 'create', file, '--serve', '--port', '0', '--data', data, '--model', modelDir], { env: serveEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => void (stdout += chunk));
    child.stderr.on('data', (chunk: Buffer) => void (stderr += chunk));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const dashboard = await new Promise<string>((resolve, reject) => {
        const look = () => {
          const url = /dashboard: (\S+)/.exec(stdout)?.[1];
          if (url) resolve(url);
        };
        child.stdout.on('data', look);
        void exited.then((code) => reject(new Error(`it exited (${code}) before printing the dashboard link:\n${stderr}`)));
      });
      const id = /campaign (cmp_[0-9a-f]{16}) created/.exec(stdout)?.[1];
      expect(id).toBeDefined();
      const site = new URL('/', dashboard).href;
      expect(stdout).toContain(`join link (visitors open it): ${site}donor/?campaign=${id}`);
      expect(dashboard).toBe(`${site}campaign/?id=${id}`);
      const { campaigns } = (await (await fetch(new URL('/api/campaigns', site))).json()) as { campaigns: { id: string; name: string; state: string }[] };
      expect(campaigns).toEqual([expect.objectContaining({ id, name: 'smoke', state: 'running' })]);
      child.kill('SIGINT');
      const code = await Promise.race([exited, new Promise((resolve) => setTimeout(() => resolve('still running 10 s after SIGINT'), 10_000).unref())]);
      expect(code, stderr).toBe(0);
      expect(stderr).toContain('infermesh grid server: stopping');
      // Kept in the data folder, where a later `npm start --data` finds it.
      const store = openCampaignStore(join(data, 'campaigns.sqlite'));
      try {
        expect(store.list().map((c) => c.id)).toEqual([id]);
      } finally {
        store.close();
      }
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  }, 30_000);

  it('refuses a bad spec before starting anything, naming the field, and --serve with --url', async () => {
    const bad = join(dir, 'bad-serve.yaml');
    await writeFile(bad, spec(server.manifest.name, '[wasm, tpu]'));
    const data = join(dir, 'bad-serve-data');
    const refused = await failure('campaign', 'create', bad, '--serve', '--port', '0', '--data', data, '--model', modelDir);
    expect(refused.stderr).toContain(`${bad}: campaign spec: providers[1]: `);
    expect(refused.stderr).not.toContain('infermesh grid server');
    expect(existsSync(data)).toBe(false);
    const both = await failure('campaign', 'create', bad, '--serve', '--url', server.url);
    expect(both.stderr).toContain('--serve and --url do not go together');
    const alone = await failure('campaign', 'create', bad, '--port', '0');
    expect(alone.stderr).toContain('--port: is for the server --serve starts');
    // Without --serve and with no server at the URL, the message says --serve would run one.
    const good = join(dir, 'good.yaml');
    await writeFile(good, spec(server.manifest.name));
    expect((await failure('campaign', 'create', good, '--url', 'http://127.0.0.1:9')).stderr).toContain('add --serve to run one in this process');
  });
});
