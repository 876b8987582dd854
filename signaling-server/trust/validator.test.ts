/** The validator's count of the tokens a stage request carried: what its stage is paid for. */
import { describe, expect, it } from 'vitest';
import type { StepRecord } from '../../shared/trust/step-record.ts';
import { tokensOf } from './validator.ts';

const record = (step: number, rows: number): StepRecord => ({ step, position: 0, rows, inputSha256: new Uint8Array(32), outputSha256: new Uint8Array(32), output: {} as StepRecord['output'], handoffProof: [] });

describe('tokensOf', () => {
  it('counts the revealed rows and one token for each step after the last revealed one', () => {
    // A 9-row replay, then 11 decode steps, revealed up to step 10: 9 + 10 + the 11th step's token.
    const revealed = [record(0, 9), ...Array.from({ length: 10 }, (_, i) => record(i + 1, 1))];
    expect(tokensOf(12, revealed)).toBe(9 + 11);
    expect(tokensOf(12, revealed.slice(0, 1))).toBe(9 + 11);
    expect(tokensOf(1, [record(0, 5)])).toBe(5);
  });
});
