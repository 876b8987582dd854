/**
 * `npm run bench -- churn --json`: generation through tabs that leave or slow down. A grid of
 * real headless Chromium donor tabs (each in a browser of its own, testkit/churn/churn-grid.ts)
 * serves stories260K (f32) as three stages with two or more replicas each, over real WebRTC, to
 * a Node grid client. Each faulty generation (100+ tokens, greedy or sampled with a seed, from
 * a few prompts) has one stage of its route, first, middle or last, hit by a random fault of
 * testkit/churn/faults.ts at a random token; its text is compared token for token with the
 * unbroken run of the same prompt and settings. Unbroken generations are interleaved with the
 * faulty ones on the same grid, for the throughput baseline. Tabs a fault took are replaced
 * by fresh tabs (a frozen or throttled tab is woken or sped up again, as a visitor returning to
 * it would), and the next generation starts once they serve: on the Internet a joining tab runs
 * on its visitor's machine, while here its browser's start, WASM compile and model load take
 * the two cores from the serving tabs for seconds, and would be measured as their stalls. With
 * --background-joins the next generation starts as soon as every layer has a standby again,
 * the replacements still joining.
 *
 * Printed: generations, completedIdentical, tokensLost, tokensRepeated, recoveryMs p50/p95/max
 * (from the fault to the next token), throughputRatio (tokens/s of the faulty runs ÷ the
 * unbroken runs, whole generations, same grid, same run), per fault kind, and the replay
 * figures (replayMs: the replacement route's replayed prefill).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { openCheckpoint } from '../cli/open-checkpoint.ts';
import buildAppAndTestPages from '../testkit/web-build.ts';
import { compileTo, removeTempDirs, STORIES_260K, TOK_512 } from '../testkit/model-fixtures.ts';
import { startChurnGrid } from '../testkit/churn/churn-grid.ts';
import type { ChurnGrid } from '../testkit/churn/churn-grid.ts';
import { CHURN_FAULTS, hitStage, recoverTabs, STAGE_POSITIONS } from '../testkit/churn/faults.ts';
import type { ChurnFault, StagePosition } from '../testkit/churn/faults.ts';
import type { GenerateOptions } from '../shared/runtime/pipeline.ts';
import type { Recovery } from '../shared/grid/route-recovery.ts';
import { machineInfo } from './machine.ts';

export interface ChurnBenchOptions {
  generations: number;
  tokens: number;
  tabs: number;
  seed: number;
  /** the next generation starts while replacement tabs still join (default: once they serve) */
  backgroundJoins?: boolean;
  /** the faults drawn from (default: all of them) */
  faults?: readonly ChurnFault[];
  /** the stage positions drawn from (default: all) */
  positions?: readonly StagePosition[];
}

const PROMPTS = ['Once upon a time', 'The little dog', 'One day, Lily'];
/** Every this many faulty generations, one unbroken generation of the same kind runs for the baseline. */
const UNBROKEN_EVERY = 3;

const log = (line: string) => process.stderr.write(`bench churn: ${line}\n`);
const round = (x: number, digits = 1) => +x.toFixed(digits);

/** A small seeded generator (mulberry32): the same --seed picks the same faults at the same tokens. */
function random(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] };
}

/** Token ids the two runs share in order (longest common subsequence): what is lost and repeated is the rest. */
function common(a: number[], b: number[]): number {
  const row = new Array<number>(b.length + 1).fill(0);
  for (const x of a) {
    let diagonal = 0;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      row[j] = x === b[j - 1] ? diagonal + 1 : Math.max(row[j], row[j - 1]);
      diagonal = above;
    }
  }
  return row[b.length];
}

const percentile = (values: number[], p: number) => {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return round(sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]);
};

interface Run {
  ids: number[];
  text: string;
  ms: number;
  /** from the fault to the next token */
  recoveryMs?: number;
  recoveries: Recovery[];
  /** the tab the fault hit */
  hitPeerId?: string;
  /** the longest the client's (this process's) event loop was held up during the generation */
  clientStallMs: number;
  /** why the generation failed, if it did (its text is what came before) */
  error?: string;
}

/** The client runs in this process: a held-up event loop here (a native call that blocks) delays every step it times. */
const loopDelay = monitorEventLoopDelay({ resolution: 10 });

async function generate(grid: ChurnGrid, prompt: string, options: Partial<GenerateOptions>, fault?: { atToken: number; kind: ChurnFault; position: StagePosition }): Promise<Run> {
  const ids: number[] = [];
  let text = '';
  let faultAt: number | undefined;
  let hitPeerId: string | undefined;
  let recoveryMs: number | undefined;
  const started = performance.now();
  loopDelay.reset();
  let error: string | undefined;
  try {
    for await (const token of grid.client.generate(prompt, options)) {
      text += token.text;
      if (token.id === null) continue;
      ids.push(token.id);
      if (faultAt !== undefined && recoveryMs === undefined) recoveryMs = performance.now() - faultAt;
      if (fault && ids.length === fault.atToken) {
        hitPeerId = await hitStage(grid, fault.position, fault.kind);
        // From the fault in effect (the tab closed, the browser gone, the page paused) to the next token.
        faultAt = performance.now();
      }
    }
  } catch (err) {
    // A failed generation is a result (not identical, its missing tokens lost), not the bench's end.
    error = `${(err as Error)?.name}: ${(err as Error)?.message}`;
  }
  return { ids, text, ms: performance.now() - started, recoveryMs, recoveries: grid.client.routeReport()?.recoveries ?? [], hitPeerId, clientStallMs: loopDelay.max / 1e6, error };
}

/** Each route change of a run, so that a slow recovery or a failure can be traced to its cause. */
function logRecoveries(run: Run): void {
  for (const r of run.recoveries) log(`  ${r.reason} at step ${r.step}: ${Math.round(r.ms)} ms (replay of ${r.replayedRows} rows ${Math.round(r.replayMs)} ms, stages ${r.replayStageMs.map(Math.round).join('/')} ms), swapped ${r.swapped.map((id) => id.slice(-6)).join(',') || 'none'}: ${r.cause}`);
  if (run.error) log(`  FAILED after ${run.ids.length} tokens: ${run.error}`);
}

/** An unbroken run, which must not fail: the faulty runs are measured against it. */
async function unbrokenRun(grid: ChurnGrid, prompt: string, options: Partial<GenerateOptions>): Promise<Run> {
  const run = await generate(grid, prompt, options);
  if (run.recoveries.length > 0 || run.error) {
    log(`unbroken run of "${prompt}" (${run.recoveries.length} recoveries)`);
    logRecoveries(run);
  }
  if (run.error) throw new Error(`an unbroken run failed (${run.error}): the grid is not sound enough to measure churn on`);
  return run;
}

export async function churnBench(options: ChurnBenchOptions) {
  // The tabs run the churn donor test page: both builds are made fresh, as the e2e setup does.
  await buildAppAndTestPages();
  const { dir } = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'f32');
  const rng = random(options.seed);
  const faults = options.faults ?? CHURN_FAULTS;
  const positions = options.positions ?? STAGE_POSITIONS;
  loopDelay.enable();
  const opened = performance.now();
  const grid = await startChurnGrid({ modelDir: dir, tabs: options.tabs, maxLayersPerNode: 2, log });
  log(`${options.tabs} tabs serving in ${Math.round(performance.now() - opened)} ms`);
  try {
    const kinds: Partial<GenerateOptions>[] = [
      { maxTokens: options.tokens, temperature: 0 },
      { maxTokens: options.tokens, temperature: 0.9, topP: 0.9, seed: 42 },
    ];
    // The unbroken run of each prompt and kind: the text every faulty run must match.
    const reference = new Map<string, Run>();
    const key = (prompt: string, kind: number) => `${kind}:${prompt}`;
    for (const prompt of PROMPTS) for (const [i, kind] of kinds.entries()) reference.set(key(prompt, i), await unbrokenRun(grid, prompt, kind));
    const unbroken: Run[] = [];
    const faulty: (Run & { kind: ChurnFault; position: string; identical: boolean; lost: number; repeated: number })[] = [];
    for (let g = 0; g < options.generations; g++) {
      const prompt = rng.pick(PROMPTS);
      const kindIndex = Math.floor(rng.next() * kinds.length);
      const expected = reference.get(key(prompt, kindIndex))!;
      const fault = { kind: rng.pick(faults), position: rng.pick(positions), atToken: 1 + Math.floor(rng.next() * (expected.ids.length - 2)) };
      const run = await generate(grid, prompt, kinds[kindIndex], fault);
      const shared = common(expected.ids, run.ids);
      const result = { ...run, kind: fault.kind, position: fault.position, identical: run.text === expected.text, lost: expected.ids.length - shared, repeated: run.ids.length - shared };
      faulty.push(result);
      log(`${g + 1}/${options.generations} ${fault.kind} on the ${fault.position} stage (${run.hitPeerId?.slice(-6) ?? '-'}) at token ${fault.atToken}: ${result.identical ? 'identical' : 'DIFFERENT'}, ${run.recoveries.length} recoveries, next token ${run.recoveryMs === undefined ? '-' : Math.round(run.recoveryMs)} ms after the fault, client event loop held up to ${Math.round(run.clientStallMs)} ms`);
      logRecoveries(run);
      if (run.hitPeerId) await recoverTabs(grid, [{ peerId: run.hitPeerId, fault: fault.kind }], { background: options.backgroundJoins });
      if ((g + 1) % UNBROKEN_EVERY === 0) unbroken.push(await unbrokenRun(grid, prompt, kinds[kindIndex]));
    }
    // A failed generation's time counts against throughput with the tokens it gave.
    const tokensPerSecond = (runs: Run[]) => runs.reduce((a, r) => a + r.ids.length, 0) / (runs.reduce((a, r) => a + r.ms, 0) / 1000);
    const spread = (runs: Run[]) => {
      const rates = runs.map((r) => r.ids.length / (r.ms / 1000));
      return { p10: percentile(rates, 10), p50: percentile(rates, 50), p90: percentile(rates, 90) };
    };
    const recoveryMs = faulty.flatMap((r) => (r.recoveryMs === undefined ? [] : [r.recoveryMs]));
    const replays = faulty.flatMap((r) => r.recoveries.filter((x) => x.replayedRows > 0));
    return {
      machine: machineInfo(),
      model: 'stories260K f32, 3 stages (at most 2 layers per tab), WASM in every tab',
      tabs: options.tabs,
      joins: options.backgroundJoins ? 'background' : 'before the next generation',
      generations: faulty.length,
      completedIdentical: faulty.filter((r) => r.identical).length,
      failed: faulty.filter((r) => r.error).length,
      tokensLost: faulty.reduce((a, r) => a + r.lost, 0),
      tokensRepeated: faulty.reduce((a, r) => a + r.repeated, 0),
      recoveryMs: { p50: percentile(recoveryMs, 50), p95: percentile(recoveryMs, 95), max: percentile(recoveryMs, 100) },
      throughputRatio: round(tokensPerSecond(faulty) / tokensPerSecond(unbroken), 3),
      tokensPerSecond: { faulty: round(tokensPerSecond(faulty)), unbroken: round(tokensPerSecond(unbroken)), unbrokenRuns: unbroken.length },
      // the spread behind the ratio: each generation's own tokens/s, p10/p50/p90
      tokensPerSecondPerGeneration: { faulty: spread(faulty), unbroken: spread(unbroken) },
      recoveries: faulty.reduce((a, r) => a + r.recoveries.length, 0),
      // the longest hold-up of the client's event loop per faulty generation (it delays the steps it times)
      clientStallMs: { p50: percentile(faulty.map((r) => r.clientStallMs), 50), max: percentile(faulty.map((r) => r.clientStallMs), 100) },
      // Replay through the whole new route (what recovery does) against its parts: the slowest
      // stage's own prefill is what a replay onto the replacement stage alone, from an upstream
      // stage's kept outputs, could at best cost in compute; the round trip adds the links.
      replay: {
        count: replays.length,
        rowsP50: percentile(replays.map((r) => r.replayedRows), 50),
        roundTripMsP50: percentile(replays.map((r) => r.replayMs), 50),
        roundTripMsP95: percentile(replays.map((r) => r.replayMs), 95),
        // a decode step on the same grid, for scale
        msPerTokenUnbrokenP50: percentile(unbroken.map((r) => r.ms / Math.max(1, r.ids.length)), 50),
        allStagesMsP50: percentile(replays.map((r) => r.replayStageMs.reduce((a, b) => a + b, 0)), 50),
        oneStageMsP50: percentile(replays.map((r) => Math.max(0, ...r.replayStageMs)), 50),
      },
      byFault: Object.fromEntries(
        CHURN_FAULTS.map((kind) => {
          const runs = faulty.filter((r) => r.kind === kind);
          const ms = runs.flatMap((r) => (r.recoveryMs === undefined ? [] : [r.recoveryMs]));
          return [kind, { generations: runs.length, identical: runs.filter((r) => r.identical).length, recoveryMsP50: percentile(ms, 50), recoveryMsMax: percentile(ms, 100), reasons: [...new Set(runs.flatMap((r) => r.recoveries.map((x) => x.reason)))] }];
        }),
      ),
    };
  } finally {
    loopDelay.disable();
    await grid.close();
    await removeTempDirs();
  }
}
