/**
 * The grid server under fuzz (issue 22), the long run: `--cases` requests and libp2p messages
 * (default 10,000; HTTP 65%, coordinator 20%, trust 10%, the relay's port 5%) against
 * `infermesh serve` as a child process, `--concurrency` at a time, from `--seed`. Reports what
 * must be zero when the server is right (serverErrors, crashes, stuckStreams, fileLeaks,
 * badErrorBodies, …), the server's peak resident memory (VmHWM) under that abuse, what it
 * answered, failures grouped by where they hit, and the first failing cases of each kind as
 * descriptions (`--case I` with the same seed runs one alone). The harness is testkit/fuzz/
 * (run-fuzz.ts); the fuzz test (signaling-server/server-fuzz.test.ts) runs a few hundred of the
 * same cases.
 */
import { machineInfo } from './machine.ts';
import { runFuzz } from '../testkit/fuzz/run-fuzz.ts';
import { DEFAULT_MIX, FAMILIES } from '../testkit/fuzz/fuzz-cases.ts';
import type { Family } from '../testkit/fuzz/fuzz-cases.ts';

export interface FuzzBenchOptions {
  cases: number;
  concurrency: number;
  seed: number;
  /** only these families, at their default weights */
  families?: Family[];
  caseIndex?: number;
  /** progress lines on stderr */
  progress?: boolean;
  /** the server's V8 heap cap in MiB (--max-old-space-size) */
  serverHeapMiB?: number;
}

export async function fuzzBench(options: FuzzBenchOptions) {
  const unknown = options.families?.filter((f) => !FAMILIES.includes(f));
  if (unknown?.length) throw new Error(`--families: unknown ${unknown.join(', ')} (known: ${FAMILIES.join(', ')})`);
  const mix = options.families ? Object.fromEntries(options.families.map((f) => [f, DEFAULT_MIX[f]])) : DEFAULT_MIX;
  let last = 0;
  const report = await runFuzz({
    seed: options.seed,
    cases: options.cases,
    concurrency: options.concurrency,
    mix,
    caseIndex: options.caseIndex,
    serverHeapMiB: options.serverHeapMiB,
    onProgress: options.progress
      ? (done, total) => {
          if (done - last < 500 && done !== total) return;
          last = done;
          process.stderr.write(`fuzz: ${done}/${total} cases\n`);
        }
      : undefined,
  });
  return { suite: 'fuzz', machine: machineInfo(), ...report };
}
