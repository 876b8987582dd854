/**
 * `infermesh donate <url>` as a donor runs it from a terminal: a child process that joins the
 * grid, fetches its share of the model and serves it beside a browser tab (the same stage
 * server, swarm and trust code as the tab, on onnxruntime-node). The grid generates the local
 * runner's tokens through both; Ctrl-C leaves the grid. A bad URL, or a grid that is not there,
 * is one line and exit code 1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openCheckpoint } from '../cli/open-checkpoint.ts';
import { localTokenIds, tokenIds } from '../testkit/local-tokens.ts';
import { compileTo, removeTempDirs, STORIES_260K, tempDir, TOK_512 } from '../testkit/model-fixtures.ts';
import { openDonorTabs } from '../signaling-server/local-grid/donor-tabs.ts';
import type { DonorTabs } from '../signaling-server/local-grid/donor-tabs.ts';
import { startGridServer } from '../signaling-server/grid-server.ts';
import type { GridServer } from '../signaling-server/grid-server.ts';

const CLI = fileURLToPath(new URL('../bin/infermesh.js', import.meta.url));
const PROMPT = 'Once upon a time';

let dir: string;
let server: GridServer;
let tabs: DonorTabs;
let donor: ChildProcess;
let donorLog = '';
let keyFile: string;

/** Runs the CLI to its end: exit code and stderr. */
function run(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('exit', (code) => resolve({ code, stderr }));
  });
}

async function untilLogged(pattern: RegExp, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(donorLog)) {
    if (Date.now() > deadline || donor.exitCode !== null) throw new Error(`the donor did not log ${pattern}; it wrote:\n${donorLog}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  ({ dir } = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'f32'));
  server = await startGridServer({ host: '127.0.0.1', port: 0, modelDir: dir, maxLayersPerNode: 3 });
  keyFile = join(await tempDir(), 'payout.key');
  donor = spawn(process.execPath, [CLI, 'donate', server.url, '--threads', '1', '--key-file', keyFile], { stdio: ['ignore', 'ignore', 'pipe'] });
  donor.stderr!.on('data', (c: Buffer) => (donorLog += c.toString()));
  tabs = await openDonorTabs(server.url, 1);
  await server.coordinator.waitFor((r) => [...r.peers.values()].filter((p) => p.serving).length === 2, 'the terminal donor and the tab serving', 120_000);
}, 150_000);

afterAll(async () => {
  if (donor?.exitCode === null) donor.kill('SIGKILL');
  await tabs?.close();
  await server?.close();
  await removeTempDirs();
});

describe('infermesh donate', () => {
  it('joins from a terminal and serves its share beside a tab: the grid generates the local runner’s tokens through both', { timeout: 120_000 }, async () => {
    await untilLogged(/donor: serving layers \d\.\.\d of 5 on .*\(native CPU\), 1 thread,/);
    expect(donorLog).toMatch(/donor: peer 12D3Koo\w+; earnings to 0x[0-9a-fA-F]{40} \(its key: .*payout\.key\); Ctrl-C to stop/);
    const client = await server.client();
    const opts = { maxTokens: 24, temperature: 0, topP: 0.9, seed: 1 };
    expect(await tokenIds(client.generate(PROMPT, opts))).toEqual(await localTokenIds(dir, PROMPT, opts));
    // Two stages: the tab's and the terminal donor's, each hop between them direct WebRTC.
    const hops = client.routeReport()!.hops;
    expect(hops.filter((h) => h.layers)).toHaveLength(2);
    expect(hops.every((h) => h.transport === 'webrtc-direct')).toBe(true);
  });

  it('leaves the grid on Ctrl-C, exit code 0', { timeout: 30_000 }, async () => {
    const exited = new Promise<number | null>((resolve) => donor.once('exit', (code) => resolve(code)));
    donor.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(donorLog).toContain('donor: leaving the grid');
    await server.coordinator.waitFor((r) => [...r.peers.values()].filter((p) => p.serving).length === 1, 'the terminal donor gone', 20_000);
  });

  it('refuses a URL that is not http(s), and a grid that is not there, in one line with exit code 1', { timeout: 60_000 }, async () => {
    const bad = await run(['donate', 'ftp://grid.example.org']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe('infermesh: error: <url>: must be an http(s):// URL, got ftp:\n');
    const badPayTo = await run(['donate', server.url, '--pay-to', 'me']);
    expect(badPayTo.code).toBe(1);
    expect(badPayTo.stderr).toMatch(/^infermesh: error: --pay-to: must be an EVM address/);
    // After the line saying what it was doing, the one error line.
    const gone = await run(['donate', 'http://127.0.0.1:9']);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toBe('donor: joining the grid\ninfermesh: error: http://127.0.0.1:9: could not join the grid: cannot reach the grid server: fetch failed\n');
  });
});
