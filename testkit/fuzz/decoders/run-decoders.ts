/**
 * Every decoder that takes bytes or JSON from the network, fuzzed one by one: `cases` inputs
 * each (10,000 in the bench, a few hundred in the test) from one seed, tallied as accepted,
 * refused (by error name) or crashed (with the first few crashing inputs, described). The
 * server fuzz (run-fuzz.ts) drives the same inputs through a running server; this drives each
 * decoder directly, so every refusal is checked to be named and every acceptance consistent.
 */
import fc from 'fast-check';
import { runDecoder } from './decoder.ts';
import type { DecoderSpec } from './decoder.ts';
import { campaignDecoders } from './campaign-decoders.ts';
import { httpDecoders } from './http-decoders.ts';
import { packageDecoders } from './package-decoders.ts';
import { trustDecoders } from './trust-decoders.ts';
import { wireDecoders } from './wire-decoders.ts';

/** Every decoder, in the order the report lists them (the package ones compile stories260K into a temp folder). */
export async function allDecoders(): Promise<DecoderSpec<never>[]> {
  return [...wireDecoders(), ...(await trustDecoders()), ...(await packageDecoders()), ...httpDecoders(), ...(await campaignDecoders())];
}

export interface DecoderTally {
  name: string;
  from: string;
  cases: number;
  accepted: number;
  /** refusals by error name */
  refused: Record<string, number>;
  crashes: number;
  /** the first crashing inputs: case index, input, what went wrong */
  firstCrashes: { index: number; input: string; what: string }[];
  ms: number;
}

const SHOWN_CRASHES = 3;

export async function fuzzDecoder(spec: DecoderSpec<never>, options: { seed: number; cases: number }): Promise<DecoderTally> {
  const tally: DecoderTally = { name: spec.name, from: spec.from, cases: 0, accepted: 0, refused: {}, crashes: 0, firstCrashes: [], ms: 0 };
  const started = performance.now();
  await fc.assert(
    fc.asyncProperty(spec.input, async (input) => {
      const index = tally.cases++;
      const outcome = await runDecoder(spec, input);
      if (outcome.kind === 'accepted') tally.accepted++;
      else if (outcome.kind === 'refused') tally.refused[outcome.name] = (tally.refused[outcome.name] ?? 0) + 1;
      else {
        tally.crashes++;
        if (tally.firstCrashes.length < SHOWN_CRASHES) tally.firstCrashes.push({ index, input: spec.describe(input), what: outcome.what });
      }
    }),
    { seed: options.seed, numRuns: options.cases },
  );
  tally.ms = Math.round(performance.now() - started);
  return tally;
}

export async function fuzzDecoders(options: { seed: number; cases: number; only?: string[]; onDecoder?: (t: DecoderTally) => void }) {
  let specs = await allDecoders();
  if (options.only) {
    const unknown = options.only.filter((n) => !specs.some((s) => s.name === n));
    if (unknown.length) throw new Error(`--only: unknown decoder ${unknown.join(', ')} (known: ${specs.map((s) => s.name).join(', ')})`);
    specs = specs.filter((s) => options.only!.includes(s.name));
  }
  const decoders: DecoderTally[] = [];
  for (const spec of specs) {
    const t = await fuzzDecoder(spec, options);
    options.onDecoder?.(t);
    decoders.push(t);
  }
  return {
    seed: options.seed,
    casesPerDecoder: options.cases,
    decoderCount: decoders.length,
    totalCases: decoders.reduce((s, d) => s + d.cases, 0),
    crashes: decoders.reduce((s, d) => s + d.crashes, 0),
    decoders,
  };
}
