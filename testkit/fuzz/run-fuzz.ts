/**
 * A whole fuzz run for counting, not for stopping at the first failure: cases generated with
 * fast-check from a seed (fc.sample, so case i is the same for the same seed and families), run
 * against the server with bounded concurrency (so memory is measured under concurrent abuse),
 * the server restarted after each crash, and the figures issue 22 asks for tallied. The fuzz
 * bench (bench/fuzz-bench.ts) prints its report; `caseIndex` replays one case of a run alone.
 */
import fc from 'fast-check';
import { DEFAULT_MIX, fuzzCaseArbitrary } from './fuzz-cases.ts';
import type { Family, FuzzCase } from './fuzz-cases.ts';
import { startFuzzRig } from './fuzz-rig.ts';
import { createTally } from './fuzz-tally.ts';

export interface FuzzRunOptions {
  seed: number;
  cases: number;
  concurrency: number;
  /** family weights (default DEFAULT_MIX); a family left out is not generated */
  mix?: Partial<Record<Family, number>>;
  /** run only the case of this index (the rest are generated, not run) */
  caseIndex?: number;
  /** called after every finished case */
  onProgress?: (done: number, total: number) => void;
  /** the server's V8 heap cap (--max-old-space-size), default Node's */
  serverHeapMiB?: number;
}

/** Runs `work` over `items` with at most `concurrency` at once. */
async function inParallel<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

export async function runFuzz(options: FuzzRunOptions) {
  const mix = options.mix ?? DEFAULT_MIX;
  const t0 = performance.now();
  const rig = await startFuzzRig({ seed: options.seed, concurrency: options.concurrency, serverHeapMiB: options.serverHeapMiB });
  const startupS = (performance.now() - t0) / 1000;
  const idleRssMiB = rig.server.rssMiB();
  try {
    const total = options.caseIndex !== undefined ? options.caseIndex + 1 : options.cases;
    const cases: FuzzCase[] = fc.sample(fuzzCaseArbitrary(rig.context, mix), { seed: options.seed, numRuns: total });
    const indices = options.caseIndex !== undefined ? [options.caseIndex] : cases.map((_, i) => i);
    const tally = createTally();
    let done = 0;
    const t1 = performance.now();
    await inParallel(indices, options.concurrency, async (i) => {
      tally.add(i, cases[i], await rig.runCase(cases[i]));
      options.onProgress?.(++done, indices.length);
    });
    const durationS = (performance.now() - t1) / 1000;
    tally.addObserved(rig.takeObservedJunk());
    const { cases: ran, ...figures } = tally.report();
    return {
      seed: options.seed,
      concurrency: options.concurrency,
      serverHeapMiB: options.serverHeapMiB ?? null,
      mix,
      cases: ran,
      crashes: rig.server.crashes.length,
      peakRssMiB: rig.server.peakRssMiB(),
      // Before the first case and after the last: a leak shows as an end that grows with the cases.
      idleRssMiB,
      endRssMiB: rig.server.rssMiB(),
      serverStarts: rig.server.starts,
      serverAliveAtEnd: rig.server.alive,
      startupS: +startupS.toFixed(1),
      durationS: +durationS.toFixed(1),
      sPer1000Cases: ran > 0 ? +((durationS * 1000) / ran).toFixed(1) : 0,
      ...figures,
      crashLog: rig.server.crashes.slice(0, 5).map((c) => ({ code: c.code, signal: c.signal, stderrTail: c.stderrTail.trim().split('\n').slice(-8).join('\n') })),
    };
  } finally {
    await rig.close();
  }
}

export type FuzzReport = Awaited<ReturnType<typeof runFuzz>>;
