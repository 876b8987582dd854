/**
 * Every binary format's bytes, pinned: the hex below is what the encoders wrote before they
 * shared binary-header.ts, and peers running either build must keep understanding each other.
 * A change here is a wire change: bump the format's version instead.
 */
import { describe, expect, it } from 'vitest';
import { encodeEnd, encodeFailure, encodeFrameMessage, encodeOpen, encodeSeal } from '../grid/stage-wire.ts';
import { encodeChallenge, encodeCommit, encodeReceipt, encodeReveal, encodeTrustFailure } from '../grid/trust-wire.ts';
import { encodeCommitment, encodeSignedCommitment } from '../trust/commitment.ts';
import type { Commitment } from '../trust/commitment.ts';
import { encodeFingerprint } from '../trust/fingerprint.ts';
import { encodeHandoff, encodeTranscript } from '../trust/handoff.ts';
import { encodeStepRecord } from '../trust/step-record.ts';
import { decodeFrame, encodeFrame } from './frame.ts';

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
/** n bytes counting up from `start` */
const run = (n: number, start = 1) => Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);

const FRAME = [
      '494d485301010300070000002a00000005007265712d31010000000200000003000000000000803f000000800000003f',
      '000000c0000050406f12833a',
    ].join('');
const frame = () => encodeFrame({ requestId: 'req-1', step: 7, position: 42, dims: [1, 2, 3], data: Float32Array.from([1, -0, 0.5, -2, 3.25, 1e-3]) });
const fingerprint = { rows: 1, width: 4, k: 2, indices: Uint16Array.from([3, 1]), values: Float32Array.from([2, -1]) };
const commitment: Commitment = {
  version: 2,
  packageId: 'pkg',
  requestId: 'req-1',
  peerId: 'peerA',
  upstream: 'peerB',
  upstreamRoot: run(32, 50),
  upstreamSeal: run(5, 9),
  layers: { start: 2, end: 4 },
  stepCount: 3,
  root: run(32, 150),
  createdAt: 1_700_000_000_123,
};

describe('wire bytes', () => {
  it('encodes a hidden-state frame byte for byte as before, and parses those bytes back', () => {
    expect(hex(frame())).toBe(FRAME);
    const parsed = decodeFrame(Uint8Array.from(Buffer.from(FRAME, 'hex')));
    expect(parsed).toMatchObject({ requestId: 'req-1', step: 7, position: 42, dims: [1, 2, 3] });
    expect(Array.from(parsed.data)).toEqual([1, -0, 0.5, -2, 3.25, Math.fround(1e-3)]);
  });

  it('encodes the trust documents byte for byte as before', () => {
    expect(hex(encodeHandoff({ requestId: 'req-1', step: 3, position: 9, rows: 2, tensorSha256: run(32) }))).toBe([
      '494d484f010000000300000009000000020000000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c',
      '1d1e1f2005007265712d31',
    ].join(''));
    expect(hex(encodeTranscript({ requestId: 'req-1', steps: 4, root: run(32, 77) }))).toBe([
      '494d485401000000040000004d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c05007265',
      '712d31',
    ].join(''));
    expect(hex(encodeFingerprint(fingerprint))).toBe('494d465001010200010000000400000003000100004000bc');
    const record = { step: 3, position: 9, rows: 1, inputSha256: run(32, 1), outputSha256: run(32, 101), output: fingerprint, handoffProof: [run(32, 201)] };
    expect(hex(encodeStepRecord(record))).toBe([
      '494d5352020000000300000009000000010000000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c',
      '1d1e1f2065666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f80818283841800000020000000494d4650',
      '01010200010000000400000003000100004000bcc9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4',
      'e5e6e7e8',
    ].join(''));
    expect(hex(encodeCommitment(commitment))).toBe([
      '494d434d02000300706b6705007265712d31050070656572410500706565724202000000040000000300000096979899',
      '9a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b532333435363738393a3b3c3d3e3f404142434445',
      '464748494a4b4c4d4e4f50517b68e5cf8b0100000500090a0b0c0d',
    ].join(''));
    expect(hex(encodeSignedCommitment({ commitment, signature: run(6, 200) }))).toBe([
      '7b000000494d434d02000300706b6705007265712d310500706565724105007065657242020000000400000003000000',
      '969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b532333435363738393a3b3c3d3e3f4041',
      '42434445464748494a4b4c4d4e4f50517b68e5cf8b0100000500090a0b0c0d0600c8c9cacbcccd',
    ].join(''));
  });

  it('encodes the stage messages byte for byte as before', () => {
    const open = { requestId: 'r', packageId: 'p', hops: [{ peerId: 'a', addrs: ['/x'], layers: { start: 0, end: 2 } }], client: { peerId: 'c', addrs: [] } };
    expect(hex(encodeOpen(open))).toBe([
      '017b22726571756573744964223a2272222c227061636b6167654964223a2270222c22686f7073223a5b7b2270656572',
      '4964223a2261222c226164647273223a5b222f78225d2c226c6179657273223a7b227374617274223a302c22656e6422',
      '3a327d7d5d2c22636c69656e74223a7b22706565724964223a2263222c226164647273223a5b5d7d7d',
    ].join(''));
    expect(hex(encodeFailure({ requestId: 'r', name: 'FrameError', message: 'bad', peerId: 'a' }))).toBe([
      '037b22726571756573744964223a2272222c226e616d65223a224672616d654572726f72222c226d657373616765223a',
      '22626164222c22706565724964223a2261227d',
    ].join(''));
    expect(hex(encodeEnd('r'))).toBe('047b22726571756573744964223a2272227d');
    expect(hex(encodeFrameMessage([{ stageMs: 1.5, link: 'direct' }, { stageMs: 20, link: 'relayed' }], frame()))).toBe(`020200000000c03f010000000000a04100000000${FRAME}`);
    expect(hex(encodeSeal(5, run(4, 60)))).toBe('05000000050000003c3d3e3f');
  });

  it('encodes the trust messages byte for byte as before', () => {
    expect(hex(encodeCommit(run(3)))).toBe('01010203');
    expect(hex(encodeChallenge({ steps: [0, 2], deadline: 123 }))).toBe('027b227374657073223a5b302c325d2c22646561646c696e65223a3132337d');
    expect(hex(encodeReceipt('r', true))).toBe('047b22726571756573744964223a2272222c226163636570746564223a747275657d');
    expect(hex(encodeTrustFailure(Object.assign(new Error('no'), { name: 'X' })))).toBe('057b226e616d65223a2258222c226d657373616765223a226e6f227d');
    expect(hex(encodeReveal({ records: [{ index: 1, record: run(3), proof: [run(32, 9)] }], inputs: [Float32Array.from([1, 2])] }))).toBe([
      '0301000000010000000300000001020301000000090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2021222324',
      '2526272801000000020000000000803f00000040',
    ].join(''));
  });
});
