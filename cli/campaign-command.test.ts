/**
 * `infermesh campaign` as a researcher types it, against a real grid server: create from a YAML
 * spec (id, join link, dashboard link), list, status, export to a file, a static report, stop; a bad spec is
 * refused before anything is sent, naming the field; a spec the grid cannot run (a model it
 * does not serve) is refused by the server, naming the field too.
 */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from './open-checkpoint.ts';
import { compileTo, REPO_ROOT, removeTempDirs, STORIES_260K, tempDir, TOK_512 } from '../testkit/model-fixtures.ts';
import { startGridServer } from '../signaling-server/grid-server.ts';
import type { GridServer } from '../signaling-server/grid-server.ts';

const run = promisify(execFile);
const BIN = join(REPO_ROOT, 'bin', 'infermesh.js');
const infermesh = (...args: string[]) => run(process.execPath, [BIN, ...args]);
const failure = (...args: string[]) => infermesh(...args).then(() => { throw new Error('it succeeded'); }, (err: { code: number; stderr: string }) => err);

let server: GridServer;
let dir: string;
beforeAll(async () => {
  const compiled = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'f32');
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
    const status = JSON.parse((await infermesh('campaign', 'status', id!, '--url', server.url, '--json')).stdout);
    expect(status.spec.workloads[0]).toMatchObject({ name: 'decode', batch: 1, layers: 'all' });
    const out = join(dir, 'runs.csv');
    await infermesh('campaign', 'export', id!, '--format', 'csv', '--out', out, '--url', server.url);
    expect((await readFile(out, 'utf8')).split('\r\n')[0]).toMatch(/^campaign,peer_id,/);
    const report = join(dir, 'report.html');
    await infermesh('campaign', 'report', id!, '--out', report, '--url', server.url);
    const html = await readFile(report, 'utf8');
    expect(html).toContain('<h1>smoke</h1>');
    expect(html.match(/<svg /g)).toHaveLength(2);
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
});
