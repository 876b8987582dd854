/**
 * Every network decoder under a few hundred fast-check cases (seed 19, INFERMESH_FUZZ_SEED picks
 * another): each input is accepted consistently or refused with a named error, never a crash.
 * A crash fails with fast-check's shrunk input. Each decoder must also both accept and refuse
 * within its cases, so a generator that only ever makes junk (or only valid input) fails here.
 * The long run, 10,000 cases per decoder: `npm run bench -- decoders --json`.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTempDirs } from '../../model-fixtures.ts';
import { runDecoder } from './decoder.ts';
import type { DecoderSpec } from './decoder.ts';
import { allDecoders } from './run-decoders.ts';

const SEED = Number(process.env.INFERMESH_FUZZ_SEED ?? 19);
const RUNS = 300;

let specs: DecoderSpec<never>[];
beforeAll(async () => {
  specs = await allDecoders();
});
afterAll(removeTempDirs);

describe(`network decoders under fuzz (seed ${SEED})`, () => {
  it('cover every decoder family', () => {
    expect(specs.map((s) => s.name)).toEqual(expect.arrayContaining(['hidden-state frame', 'stage message', 'trust message', 'coordinator message (to the coordinator)', 'piece request', 'signed commitment', 'hand-off seal', 'manifest', 'voucher', 'request body', 'chat completion body', 'request target']));
  });

  it('refuse every malformed input by name and accept only consistent ones', { timeout: 240_000 }, async () => {
    for (const spec of specs) {
      const seen = { accepted: 0, refused: 0 };
      await fc.assert(
        fc.asyncProperty(spec.input, async (input) => {
          const outcome = await runDecoder(spec, input);
          if (outcome.kind === 'crash') throw new Error(`${spec.name}: ${outcome.what}\n  input: ${spec.describe(input)}`);
          seen[outcome.kind]++;
        }),
        { seed: SEED, numRuns: RUNS },
      );
      expect(seen.accepted, `${spec.name} accepted nothing`).toBeGreaterThan(0);
      expect(seen.refused, `${spec.name} refused nothing`).toBeGreaterThan(0);
    }
  });
});
