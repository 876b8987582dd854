import { describe, expect, it } from 'vitest';
import { encodeFrame } from '../protocol/frame.ts';
import { FINGERPRINT_TOP_K, fingerprintHidden } from './fingerprint.ts';
import { decodeStepRecord, encodeStepRecord, recordStep } from './step-record.ts';

const WIDTH = 64;
const hidden = (rows: number, seed: number) => Float32Array.from({ length: rows * WIDTH }, (_, i) => Math.sin(seed * 1000 + i * 0.37) * (1 + (i % 7)));
const sha256 = async (bytes: Uint8Array) => new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));

describe('recordStep', () => {
  it('hashes the tensor bytes a frame carries and fingerprints the output', async () => {
    const input = hidden(5, 1);
    const output = hidden(5, 2);
    const record = await recordStep(input, output, { step: 0, position: 0, rows: 5 });
    const frame = encodeFrame({ requestId: 'r', step: 0, position: 0, dims: [1, 5, WIDTH], data: input });
    expect(record.inputSha256).toEqual(await sha256(frame.subarray(frame.byteLength - input.byteLength)));
    expect(record.outputSha256).toEqual(await sha256(new Uint8Array(output.buffer)));
    expect(record.output).toEqual(fingerprintHidden(output, 5, WIDTH));
  });

  it('hashes a subarray view by its own bytes, not its buffer', async () => {
    const big = hidden(3, 3);
    const view = big.subarray(WIDTH, 2 * WIDTH);
    const record = await recordStep(view, view, { step: 4, position: 9, rows: 1 });
    expect(record.inputSha256).toEqual(await sha256(new Uint8Array(view.slice().buffer)));
  });

  it('refuses an output that is not `rows` rows of the input\'s shape', async () => {
    await expect(recordStep(hidden(2, 1), hidden(3, 1), { step: 0, position: 0, rows: 2 })).rejects.toMatchObject({ name: 'UsageError' });
    await expect(recordStep(new Float32Array(10), new Float32Array(10), { step: 0, position: 0, rows: 3 })).rejects.toMatchObject({ name: 'UsageError' });
  });
});

describe('step record encoding', () => {
  it('round-trips in 92 bytes plus the fingerprint and 32 bytes per hand-off proof node', async () => {
    const record = await recordStep(hidden(1, 4), hidden(1, 5), { step: 7, position: 31, rows: 1 });
    expect(record.handoffProof).toEqual([]);
    expect(encodeStepRecord(record).byteLength).toBe(92 + 16 + 4 * FINGERPRINT_TOP_K);
    expect(decodeStepRecord(encodeStepRecord(record))).toEqual(record);
    const proved = { ...record, handoffProof: [1, 2, 3].map((n) => new Uint8Array(32).fill(n)) };
    const bytes = encodeStepRecord(proved);
    expect(bytes.byteLength).toBe(92 + 16 + 4 * FINGERPRINT_TOP_K + 96);
    expect(decodeStepRecord(bytes)).toEqual(proved);
  });

  it.each([
    ['a truncated record', (b: Uint8Array) => b.subarray(0, 50), /shorter than its header/],
    ['bad magic', (b: Uint8Array) => (b.set([1, 2, 3, 4], 0), b), /bad magic/],
    ['a lying fingerprint length', (b: Uint8Array) => (b.set([1], 84), b), /says \d+ bytes/],
    ['a lying proof length', (b: Uint8Array) => (b.set([32], 88), b), /says \d+ bytes/],
    ['a damaged fingerprint', (b: Uint8Array) => (b.set([0], 92), b), /fingerprint is unreadable/],
    ['rows that disagree with the fingerprint', (b: Uint8Array) => (b.set([2], 16), b), /has a fingerprint of 1/],
  ])('refuses %s with StepRecordFormatError', async (_, damage, message) => {
    const bytes = encodeStepRecord(await recordStep(hidden(1, 4), hidden(1, 5), { step: 7, position: 31, rows: 1 }));
    expect(() => decodeStepRecord(damage(bytes.slice()))).toThrow(expect.objectContaining({ name: 'StepRecordFormatError', message: expect.stringMatching(message) }));
  });
});
