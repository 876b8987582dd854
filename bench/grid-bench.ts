/**
 * `npm run bench -- grid --json`: decode speed of synthetic:110m (q4) through a grid of 1, 2
 * and 4 headless Chromium donor tabs on this machine, each grid the one `infermesh demo` runs
 * (signaling-server/local-grid/demo-grid.ts: grid server, tabs, Node grid client), with at most ceil(12 / tabs) layers
 * per tab so the model really is split. Per grid: time from page open to serving, a warm-up
 * generation, then rounds of the same greedy generation. Two schedules: `interleaved` keeps
 * the three grids up at once and runs each round through all of them, starting at a different
 * one, so a drift in the machine's speed lands on all alike; `sequential` runs one grid at a time
 * (fresh server and tabs each). Idle donor tabs are not free (each grid's idle CPU is measured
 * and reported), so on a small machine the other grids' idle tabs would tax whichever grid is
 * generating, the 1-tab grid most (6 idle tabs beside it, against 3 beside the 4-tab grid):
 * below INTERLEAVE_MIN_CPUS cores the default is sequential.
 * Top-level `pipelineRatio` = tokens/s at 4 tabs ÷ tokens/s at 1 tab (target ≥ 0.8).
 */
import { availableParallelism, cpus } from 'node:os';
import { ensureWebApp } from '../signaling-server/local-grid/web-app.ts';
import { hopReport, startDemoGrid, tabReport, timeGeneration } from '../signaling-server/local-grid/demo-grid.ts';
import type { DemoGrid, TimedGeneration } from '../signaling-server/local-grid/demo-grid.ts';
import { readPackageManifest } from '../worker/node/package-files.ts';
import { connect } from '../packages/sdk/src/node.ts';
import { benchPackage } from './local-bench.ts';
import { machineInfo } from './machine.ts';
import { median } from '../testkit/engine/decoders.ts';
import { startProcessCpuSample } from './process-cpu.ts';
import type { ProcessCpu } from './process-cpu.ts';

const TAB_COUNTS = [1, 2, 4];
const PROMPT = 'Once upon a time';
/** Seven idle tabs took about 17% of a 2-core machine here: with fewer cores than this, interleaving is not fair. */
const INTERLEAVE_MIN_CPUS = 8;
/** How long the machine is sampled right after a generation (the grid finishing its work: commitments, the validator's replays). */
const AFTER_REQUEST_SAMPLE_MS = 3000;
/** Once the validator is idle, how long the grid is left alone before its idle CPU is sampled, and how long it is sampled. */
const IDLE_SETTLE_MS = 5000;
const IDLE_SAMPLE_MS = 10_000;
/**
 * A tab left open for hours: sampled again once the grid has been alone this long, past the
 * tail of the last request (commitments, closing streams, collected garbage) and past the time
 * a tab keeps an idle link it does not need (web/donor/donor.ts, IDLE_LINK_MS).
 */
const LONG_IDLE_AFTER_MS = 30_000;
/** The busiest processes listed beside idleBusyPercent. */
const IDLE_PROCESSES_REPORTED = 12;

export type GridBenchSchedule = 'interleaved' | 'sequential';

export interface GridBenchOptions {
  /** completion tokens per generation (greedy) */
  tokens: number;
  rounds: number;
  /** default: interleaved on INTERLEAVE_MIN_CPUS cores or more, else sequential */
  schedule?: GridBenchSchedule;
}

export function defaultSchedule(): GridBenchSchedule {
  return availableParallelism() >= INTERLEAVE_MIN_CPUS ? 'interleaved' : 'sequential';
}

/** Percent of the whole machine's CPU time spent busy over the next `ms`, and the processes that spent it. */
async function machineBusy(ms: number): Promise<{ percent: number; byProcess: ProcessCpu[] }> {
  const sample = () => cpus().reduce((acc, c) => ({ idle: acc.idle + c.times.idle, total: acc.total + Object.values(c.times).reduce((a, b) => a + b, 0) }), { idle: 0, total: 0 });
  const a = sample();
  const processes = startProcessCpuSample();
  await new Promise((r) => setTimeout(r, ms));
  const b = sample();
  const byProcess = processes().slice(0, IDLE_PROCESSES_REPORTED);
  return { percent: b.total > a.total ? 100 * (1 - (b.idle - a.idle) / (b.total - a.total)) : 0, byProcess };
}

/**
 * What the grids cost the machine right after a generation, and then idle: serving nothing, the
 * validator done with its replays, left alone a few seconds (what a visitor's open tab costs).
 */
async function idleCost(grids: Measured[]): Promise<Pick<Measured, 'idleBusyPercent' | 'idleByProcess' | 'afterRequestBusyPercent' | 'longIdleBusyPercent' | 'longIdleByProcess'>> {
  const afterRequestBusyPercent = (await machineBusy(AFTER_REQUEST_SAMPLE_MS)).percent;
  await Promise.all(grids.map((m) => m.grid.server.validator.idle()));
  await new Promise((r) => setTimeout(r, IDLE_SETTLE_MS));
  const idle = await machineBusy(IDLE_SAMPLE_MS);
  await new Promise((r) => setTimeout(r, LONG_IDLE_AFTER_MS - IDLE_SETTLE_MS - IDLE_SAMPLE_MS));
  const longIdle = await machineBusy(IDLE_SAMPLE_MS);
  return { afterRequestBusyPercent, idleBusyPercent: idle.percent, idleByProcess: idle.byProcess, longIdleBusyPercent: longIdle.percent, longIdleByProcess: longIdle.byProcess };
}

const log = (line: string) => process.stderr.write(`bench grid: ${line}\n`);
const round = (x: number, digits = 3) => +x.toFixed(digits);
/** A generation's decode speed: mean milliseconds of the steps after the first token. */
const msPerToken = (g: TimedGeneration) => g.decodeStepsMs.reduce((a, b) => a + b, 0) / Math.max(1, g.decodeStepsMs.length);

interface Measured {
  tabs: number;
  maxLayersPerNode: number;
  grid: DemoGrid;
  warmUp?: TimedGeneration;
  /** the machine's busy CPU percent while this grid sat idle (sampled alone in the sequential schedule) */
  idleBusyPercent?: number;
  /** the busiest processes meanwhile (percent of one core each): the server and client, Chromium's browser, renderers, network service */
  idleByProcess?: ProcessCpu[];
  /** the same, sampled again once the grid has been alone LONG_IDLE_AFTER_MS */
  longIdleBusyPercent?: number;
  longIdleByProcess?: ProcessCpu[];
  /** the machine's busy CPU percent in the first seconds after the warm-up generation */
  afterRequestBusyPercent?: number;
  rounds: TimedGeneration[];
  report?: Awaited<ReturnType<typeof describeGrid>>;
}

async function openGrid(dir: string, tabs: number, nLayers: number): Promise<Measured> {
  const maxLayersPerNode = Math.ceil(nLayers / tabs);
  log(`starting a grid of ${tabs} tab(s), at most ${maxLayersPerNode} layers each`);
  const grid = await startDemoGrid({ modelDir: dir, tabs, maxLayersPerNode, log: (line) => log(`  [${tabs} tab(s)] ${line}`) }, { connect });
  return { tabs, maxLayersPerNode, grid, rounds: [] };
}

const generate = (m: Measured, tokens: number) => timeGeneration(m.grid.client, PROMPT, { maxTokens: tokens, temperature: 0, topP: 1, seed: 1 });

async function warmUp(m: Measured, tokens: number) {
  const g = await generate(m, tokens);
  m.warmUp = g;
  log(`  [${m.tabs} tab(s)] warm-up: ${g.tokens} tokens, first after ${g.firstTokenMs.toFixed(0)} ms, ${msPerToken(g).toFixed(1)} ms/token`);
}

async function measureRound(m: Measured, tokens: number, index: number) {
  const g = await generate(m, tokens);
  m.rounds.push(g);
  log(`  [${m.tabs} tab(s)] round ${index + 1}: ${msPerToken(g).toFixed(1)} ms/token`);
}

/** Everything reported about one grid, read while it is still up. */
async function describeGrid(m: Measured) {
  const perRound = m.rounds.map(msPerToken);
  const ms = median(perRound);
  const hops = hopReport(m.grid);
  const stageMsSum = hops.reduce((sum, h) => sum + (h.stageMs ?? 0), 0);
  return {
    tabs: m.tabs,
    maxLayersPerNode: m.maxLayersPerNode,
    tokens: m.rounds[0]?.tokens ?? 0,
    tokensPerSecond: round(1000 / ms, 2),
    msPerToken: round(ms),
    msPerTokenRounds: perRound.map((x) => round(x, 2)),
    firstTokenMs: round(median(m.rounds.map((g) => g.firstTokenMs)), 1),
    // the first generation also sets the route up (direct WebRTC dials to the first and last stage)
    warmUpFirstTokenMs: m.warmUp ? round(m.warmUp.firstTokenMs, 1) : null,
    idleBusyPercent: m.idleBusyPercent === undefined ? null : round(m.idleBusyPercent, 1),
    idleByProcess: m.idleByProcess ?? null,
    longIdleBusyPercent: m.longIdleBusyPercent === undefined ? null : round(m.longIdleBusyPercent, 1),
    longIdleByProcess: m.longIdleByProcess ?? null,
    afterRequestBusyPercent: m.afterRequestBusyPercent === undefined ? null : round(m.afterRequestBusyPercent, 1),
    timeToServingMs: m.grid.timeToServingMs,
    timeToLinksMs: m.grid.timeToLinksMs,
    predictedMs: m.grid.client.routeReport()?.predictedMs ?? null,
    // what the stages computed per token (each hop's median over every step the route carried), and what the rest (frames on the wire, the client's embedding and head) cost
    stageMsSum: round(stageMsSum),
    outsideStagesMs: round(ms - stageMsSum),
    hops: hops.map((h) => ({ ...h, stageMs: h.stageMs === null ? null : round(h.stageMs) })),
    direct: hops.length > 0 && hops.every((h) => h.transport === 'webrtc-direct'),
    tabsReport: (await tabReport(m.grid)).map((t) => ({ peerId: t.peerId, executionProvider: t.executionProvider, msPerLayer: t.msPerLayer, layers: t.layers })),
    text: m.rounds[0]?.text ?? '',
  };
}

export async function gridBench(options: GridBenchOptions) {
  const dir = await benchPackage('110m', 'q4');
  const manifest = await readPackageManifest(dir);
  const { nLayers } = manifest.config;
  await ensureWebApp();
  const schedule = options.schedule ?? defaultSchedule();
  const sequential = schedule === 'sequential';
  const measured: Measured[] = [];
  if (sequential) {
    for (const tabs of TAB_COUNTS) {
      const m = await openGrid(dir, tabs, nLayers);
      try {
        await warmUp(m, options.tokens);
        Object.assign(m, await idleCost([m]));
        for (let r = 0; r < options.rounds; r++) await measureRound(m, options.tokens, r);
        m.report = await describeGrid(m);
        measured.push(m);
      } finally {
        await m.grid.close();
      }
    }
  } else {
    try {
      // Grids are started one after another, so each one's time to serving is its own.
      for (const tabs of TAB_COUNTS) measured.push(await openGrid(dir, tabs, nLayers));
      for (const m of measured) await warmUp(m, options.tokens);
      const idle = await idleCost(measured);
      for (const m of measured) Object.assign(m, idle);
      for (let r = 0; r < options.rounds; r++) {
        for (let i = 0; i < measured.length; i++) await measureRound(measured[(r + i) % measured.length], options.tokens, r);
      }
      for (const m of measured) m.report = await describeGrid(m);
    } finally {
      for (const m of measured) await m.grid.close();
    }
  }

  const one = measured.find((m) => m.tabs === 1)!;
  const four = measured.find((m) => m.tabs === 4)!;
  // Interleaved rounds run the grids back to back, so their ratios pair up; sequential rounds are minutes apart, so the medians are divided.
  const ratios = one.rounds.map((g, r) => msPerToken(g) / msPerToken(four.rounds[r]));
  const pipelineRatio = sequential ? median(one.rounds.map(msPerToken)) / median(four.rounds.map(msPerToken)) : median(ratios);
  const texts = new Set(measured.map((m) => m.report!.text));
  return {
    suite: 'grid',
    model: 'synthetic:110m',
    dtype: manifest.dtype,
    packageId: manifest.id,
    nLayers,
    prompt: PROMPT,
    decodeTokens: options.tokens,
    rounds: options.rounds,
    schedule,
    scheduleNote: sequential
      ? `one grid at a time (fresh server and tabs), warm-up then all its rounds: idle donor tabs cost CPU (idleBusyPercent), so on ${availableParallelism()} core(s) the other grids' idle tabs would slow whichever grid generates`
      : 'the three grids up at once; each round runs every grid once, starting at a different one (idleBusyPercent: all three idle together)',
    msPerTokenStatistic: 'per round the mean of the decode steps after the first token; per grid the median over rounds',
    pipelineRatio: round(pipelineRatio, 4),
    pipelineRatioStatistic: sequential ? 'tokens/s (4 tabs) ÷ tokens/s (1 tab), medians over rounds' : 'median over rounds of tokens/s (4 tabs) ÷ tokens/s (1 tab) in the same round',
    pipelineRatioRounds: sequential ? undefined : ratios.map((x) => round(x, 4)),
    target: { pipelineRatio: 0.8 },
    // greedy decoding of one model: the grids must agree token for token
    textsAgree: texts.size === 1,
    machine: machineInfo(),
    results: measured.map((m) => m.report!),
  };
}
