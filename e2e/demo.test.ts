/**
 * `infermesh demo` as a person runs it: a child process that starts the grid server, opens two
 * headless Chromium donor tabs that split stories260K between them, generates through them with
 * the Node grid client and prints one JSON object. Its text is the local runner's; its route
 * covers the model in order; every hop is direct WebRTC.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../cli/open-checkpoint.ts';
import { openLocalPipeline } from '../worker/node/local-package.ts';
import { compileTo, REPO_ROOT, removeTempDirs, STORIES_260K, TOK_512 } from '../testkit/model-fixtures.ts';

const run = promisify(execFile);
const BIN = join(REPO_ROOT, 'bin', 'infermesh.js');
const PROMPT = 'Once upon a time';
/** The demo's sampling defaults, the same as `infermesh generate`'s. */
const DEMO_DEFAULTS = { temperature: 1, topP: 0.9, seed: 42 };
const MAX_TOKENS = 20;

interface DemoReport {
  text: string;
  tokens: number;
  tokensPerSecond: number;
  msPerToken: number;
  route: { peerId: string; layers: { start: number; end: number } }[];
  hops: { from: string; to: string; transport: string; stageMs: number | null }[];
  direct: boolean;
  tabs: { peerId: string; executionProvider: string; msPerLayer: number; layers: { start: number; end: number }; pieces: { fromPeers: number; fromWebSeed: number } }[];
  timeToServingMs: number;
}

let dir: string;
let report: DemoReport;

beforeAll(async () => {
  ({ dir } = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'f32'));
  const { stdout } = await run(process.execPath, [BIN, 'demo', '--tabs', '2', '--model', dir, '--max-tokens', String(MAX_TOKENS), '--json'], { cwd: REPO_ROOT, timeout: 240_000 });
  report = JSON.parse(stdout) as DemoReport;
});

afterAll(async () => {
  await removeTempDirs();
});

describe('infermesh demo --tabs 2 on stories260K', () => {
  it('prints the text `infermesh generate` prints for the same prompt and sampling settings', async () => {
    const local = await openLocalPipeline(dir, { stages: 1 });
    let text = '';
    let tokens = 0;
    for await (const t of local.pipeline.generate(PROMPT, { maxTokens: MAX_TOKENS, ...DEMO_DEFAULTS })) {
      text += t.text;
      if (t.id !== null) tokens += 1;
    }
    await local.release();
    expect(report.text).toBe(text);
    expect(report.tokens).toBe(tokens);
    expect(report.tokens).toBeGreaterThan(0);
    expect(report.tokensPerSecond).toBeGreaterThan(0);
  });

  it('routes through both tabs, covering layers 0..4 in order, every hop direct WebRTC', () => {
    expect(report.route).toHaveLength(2);
    let next = 0;
    for (const hop of report.route) {
      expect(hop.layers.start).toBe(next);
      // the default --max-layers-per-node, ceil(5 / 2), splits the model across the tabs
      expect(hop.layers.end - hop.layers.start).toBeLessThanOrEqual(3);
      next = hop.layers.end;
    }
    expect(next).toBe(5);
    expect(new Set(report.route.map((h) => h.peerId)).size).toBe(2);
    expect(report.direct).toBe(true);
    expect(report.hops.map((h) => h.transport)).toEqual(['webrtc-direct', 'webrtc-direct', 'webrtc-direct']);
  });

  it('reports each tab: its measured device, its layers and where its pieces came from', () => {
    expect(report.tabs).toHaveLength(2);
    expect(report.tabs.map((t) => t.peerId).sort()).toEqual(report.route.map((h) => h.peerId).sort());
    for (const tab of report.tabs) {
      expect(['webgpu', 'wasm']).toContain(tab.executionProvider);
      expect(tab.msPerLayer).toBeGreaterThan(0);
      expect(tab.pieces.fromPeers + tab.pieces.fromWebSeed).toBeGreaterThan(0);
    }
    expect(report.timeToServingMs).toBeGreaterThan(0);
  });

  it('refuses a bad argument with one error line and exit code 1, starting nothing', async () => {
    const failed = await run(process.execPath, [BIN, 'demo', '--tabs', '0'], { cwd: REPO_ROOT }).catch((err: { code: number; stderr: string }) => err);
    expect((failed as { code: number }).code).toBe(1);
    expect((failed as { stderr: string }).stderr).toMatch(/--tabs must be an integer ≥ 1/);
  });
});
