/**
 * What trust costs and what it catches (issue 5), over real libp2p in Node: stage peers on
 * onnxruntime-node shard engines, direct WebRTC between them, the validator on the relay node
 * as in the server (testkit/trust-grid.ts).
 *
 * - Overhead: synthetic:110m q4 through three 4-layer stages, with commitments on (every step
 *   hashed and fingerprinted, a signed commitment and a challenge answer per request) and off:
 *   each round one request of each through the same stages and client, taking turns token by
 *   token (decode steps timed: a prompt also opens the request's streams, which varies by tens
 *   of ms; the validator replays between rounds); `overheadRatio` is
 *   the median of the rounds' on ÷ off tokens/s. Node stages rather than tabs: tabs on this 2-core machine vary by more
 *   than the few percent being measured, and the stage server, journal and attestor are the
 *   same code in both.
 * - Validator replay cost as a fraction of generation time, and proof bytes per token.
 * - Detection: each stage fault (testkit/engine/stage-faults.ts) serves the middle of a stories260K f32 route
 *   until the validator's verdict against it fails; requests until then, per kind.
 * - falseVerdicts: failing verdicts against honest stages over the whole run.
 */
import { benchPackage } from './local-bench.ts';
import { machineInfo } from './machine.ts';
import { median } from '../shared/statistics.ts';
import { pipelineDecoder } from '../testkit/engine/decoders.ts';
import type { DecodeRun } from '../testkit/engine/decoders.ts';
import { parseStageFault } from '../testkit/engine/stage-fault.ts';
import { startTrustGrid } from '../testkit/trust-grid.ts';
import type { StagePeer, TrustGrid } from '../testkit/trust-grid.ts';

export interface TrustBenchOptions {
  tokens: number;
  rounds: number;
}

const FAULTS = ['other-model', 'q4-weights', 'skip-layer', 'noise:0.01', 'replay-old-output'];
const DETECTION_TOKENS = 12;
const MAX_REQUESTS = 5;

const spread = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const at = (q: number) => +sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))].toFixed(2);
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1) };
};

async function overhead(options: TrustBenchOptions, honestPeers: Set<string>) {
  let attesting = true;
  const grid = await startTrustGrid({ dir: await benchPackage('110m', 'q4') });
  try {
    const route: StagePeer[] = [];
    for (const start of [0, 4, 8]) route.push(await grid.startStage({ start, end: start + 4 }, { attest: () => attesting }));
    route.forEach((p) => honestPeers.add(p.hop.peerId));
    // Warm-up: connections, sessions and the validator's replay sessions, both ways.
    for (const mode of [true, false]) {
      attesting = mode;
      await grid.generate(route, 8);
      if (mode) await grid.settled(route);
    }
    const on: number[] = [];
    const off: number[] = [];
    const stepMs: Record<'on' | 'off', number[]> = { on: [], off: [] };
    let proofBytes = 0;
    let commitmentBytes = 0;
    let replayMs = 0;
    let generationMs = 0;
    const { pipeline, release } = await grid.client(route, { seal: () => attesting });
    const decoder = pipelineDecoder(pipeline);
    try {
      for (let round = 0; round < options.rounds; round++) {
        const seen = grid.verdicts.length;
        // A request attests when attesting was on at its first step (its prefill, in start()).
        const runs: Record<'on' | 'off', { run: DecodeRun; ms: number }> = {} as never;
        for (const mode of round % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const)) {
          attesting = mode === 'on';
          runs[mode] = { run: await decoder.start(), ms: 0 };
        }
        // Token by token, the order rotating: both requests see the same moments of host load.
        for (let token = 0; token < options.tokens; token++) {
          for (const mode of (round + token) % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const)) {
            const t0 = performance.now();
            await runs[mode].run.step();
            const ms = performance.now() - t0;
            runs[mode].ms += ms;
            stepMs[mode].push(ms);
          }
        }
        await runs.on.run.end();
        await runs.off.run.end();
        on.push((options.tokens * 1000) / runs.on.ms);
        off.push((options.tokens * 1000) / runs.off.ms);
        generationMs += runs.on.ms;
        // The validator replays before the next round, so its work never lands inside a timed step.
        const outcomes = await grid.settled(route);
        proofBytes += outcomes.reduce((sum, o) => sum + o.proofBytes, 0);
        commitmentBytes += outcomes.reduce((sum, o) => sum + o.commitmentBytes, 0);
        replayMs += grid.verdicts.slice(seen).reduce((sum, v) => sum + v.replayMs, 0);
      }
    } finally {
      await release();
    }
    const ratios = on.map((tps, i) => tps / off[i]);
    const cost = {
      model: 'synthetic:110m q4, 3 stages × 4 layers',
      tokensPerRequest: options.tokens,
      rounds: options.rounds,
      tokensPerSecondOn: +median(on)!.toFixed(2),
      tokensPerSecondOff: +median(off)!.toFixed(2),
      overheadRatio: +median(ratios)!.toFixed(4),
      overheadRatioRange: [+Math.min(...ratios).toFixed(4), +Math.max(...ratios).toFixed(4)],
      /** the same over the whole run: all decode steps off ÷ on, milliseconds summed */
      overheadRatioOverall: +(stepMs.off.reduce((a, b) => a + b, 0) / stepMs.on.reduce((a, b) => a + b, 0)).toFixed(4),
      /** decode step milliseconds over all rounds: the tail is where one round's total swings */
      stepMs: Object.fromEntries((['on', 'off'] as const).map((m) => [m, spread(stepMs[m])])),
      /** validator replay time (all stages' challenged prefixes, both passes when a check failed) over generation time */
      replayCostFraction: +(replayMs / generationMs).toFixed(4),
      /** commitments plus reveals (records, Merkle proofs and the f32 inputs of every step up to the last challenged one), over all stages */
      proofBytesPerToken: Math.round(proofBytes / (options.tokens * options.rounds)),
      /** of which commitments: what every request costs whether challenged or not */
      commitmentBytesPerToken: +(commitmentBytes / (options.tokens * options.rounds)).toFixed(1),
    };
    return { cost, verdicts: [...grid.verdicts] };
  } finally {
    await grid.stop();
  }
}

async function detection(honestPeers: Set<string>) {
  const grid: TrustGrid = await startTrustGrid();
  const table: Record<string, { detected: boolean; requests: number | null; checkedSteps: string; kind: string | null; match: number | null; valueError: number | null }> = {};
  try {
    const honest = [await grid.startStage({ start: 0, end: 2 }), await grid.startStage({ start: 4, end: 5 })];
    honest.forEach((p) => honestPeers.add(p.hop.peerId));
    // Opens the client's connections before anything is timed or counted.
    const warm = await grid.startStage({ start: 2, end: 4 });
    honestPeers.add(warm.hop.peerId);
    await grid.generate([honest[0], warm, honest[1]], 4);
    await grid.settled([honest[0], warm, honest[1]]);
    for (const text of FAULTS) {
      const cheat = await grid.startStage({ start: 2, end: 4 }, { fault: parseStageFault(text) });
      const route = [honest[0], cheat, honest[1]];
      let requests = 0;
      const seen = grid.verdicts.length;
      let caught;
      while (!caught && requests < MAX_REQUESTS) {
        await grid.generate(route, DETECTION_TOKENS);
        await grid.settled(route);
        requests++;
        caught = grid.verdicts.slice(seen).find((v) => v.peerId === cheat.hop.peerId && !v.ok);
      }
      table[text] = {
        detected: caught !== undefined,
        requests: caught ? requests : null,
        checkedSteps: caught ? `${caught.checkedSteps.length} of ${caught.stepCount}` : '-',
        /** the worst step's comparison with the replay (a conviction on signatures has none) */
        kind: caught?.kind ?? null,
        match: caught?.worst ? caught.worst.worstMatch.matchFraction : null,
        valueError: caught?.worst ? +caught.worst.worstValue.valueError.toPrecision(3) : null,
      };
      await cheat.node.stop();
    }
    return { table, verdicts: [...grid.verdicts] };
  } finally {
    await grid.stop();
  }
}

export async function trustBench(options: TrustBenchOptions) {
  const honestPeers = new Set<string>();
  process.stderr.write('bench trust: overhead (synthetic:110m q4)\n');
  const { cost, verdicts: overheadVerdicts } = await overhead(options, honestPeers);
  process.stderr.write('bench trust: detection (stories260K f32)\n');
  const found = await detection(honestPeers);
  const all = [...overheadVerdicts, ...found.verdicts];
  const detected = Object.entries(found.table).filter(([, row]) => row.detected).map(([kind]) => kind);
  return {
    suite: 'trust',
    overheadRatio: cost.overheadRatio,
    cheats: FAULTS.length,
    detected: detected.length,
    falseVerdicts: all.filter((v) => honestPeers.has(v.peerId) && !v.ok).length,
    target: { overheadRatio: 0.97 },
    cost,
    detection: { model: 'stories260K f32, cheat on layers 2..3 of 5', tokensPerRequest: DETECTION_TOKENS, maxRequests: MAX_REQUESTS, kinds: found.table },
    machine: machineInfo(),
  };
}
