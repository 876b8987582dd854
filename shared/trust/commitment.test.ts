import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  decodeSignedCommitment,
  encodeSignedCommitment,
  revealRecords,
  signCommitment,
  verifyCommitment,
  verifyReveal,
} from './commitment.ts';
import type { CommitmentMeta, SignedCommitment } from './commitment.ts';
import { recordStep } from './step-record.ts';
import type { StepRecord } from './step-record.ts';

const WIDTH = 32;
const hidden = (rows: number, seed: number) => Float32Array.from({ length: rows * WIDTH }, (_, i) => Math.cos(seed * 7 + i * 0.21) * (1 + (i % 5)));
const META: CommitmentMeta = { packageId: 'pkg-3f2a', requestId: 'req-1', upstream: '12D3KooWClientClientClientClientClientClientClient', upstreamRoot: new Uint8Array(32).fill(7), upstreamSeal: new Uint8Array(64).fill(9), layers: { start: 1, end: 4 }, createdAt: 1_700_000_000_123 };

let records: StepRecord[];
beforeAll(async () => {
  // A prompt of 6 rows, then 6 decode steps.
  records = [await recordStep(hidden(6, 0), hidden(6, 100), { step: 0, position: 0, rows: 6 })];
  for (let s = 1; s <= 6; s++) records.push(await recordStep(hidden(1, s), hidden(1, 100 + s), { step: s, position: 5 + s, rows: 1 }));
});

describe('signCommitment', () => {
  it('commits to every step under the signer\'s peer id, verifiable by anyone', async () => {
    const key = await generateKeyPair('Ed25519');
    const signed = await signCommitment(records, META, key);
    expect(signed.commitment).toMatchObject({ version: 2, ...META, peerId: peerIdFromPrivateKey(key).toString(), stepCount: 7 });
    expect(signed.commitment.root.byteLength).toBe(32);
    await expect(verifyCommitment(signed)).resolves.toBeUndefined();
  });

  it('survives its binary encoding, signature included', async () => {
    const signed = await signCommitment(records, META, await generateKeyPair('Ed25519'));
    const decoded = decodeSignedCommitment(encodeSignedCommitment(signed));
    expect(decoded).toEqual(signed);
    await expect(verifyCommitment(decoded)).resolves.toBeUndefined();
  });

  it('refuses records that are not steps 0..n-1 in order', async () => {
    await expect(signCommitment([records[1], records[0]], META, await generateKeyPair('Ed25519'))).rejects.toMatchObject({ name: 'UsageError' });
  });
});

describe('verifyCommitment', () => {
  let signed: SignedCommitment;
  beforeAll(async () => {
    signed = await signCommitment(records, META, await generateKeyPair('Ed25519'));
  });

  it('rejects a commitment signed by another key than its peer id', async () => {
    const other = await signCommitment(records, META, await generateKeyPair('Ed25519'));
    await expect(verifyCommitment({ commitment: signed.commitment, signature: other.signature })).rejects.toMatchObject({ name: 'CommitmentSignatureError' });
  });

  it('rejects a commitment whose fields changed after signing', async () => {
    await expect(verifyCommitment({ ...signed, commitment: { ...signed.commitment, stepCount: 6 } })).rejects.toMatchObject({ name: 'CommitmentSignatureError' });
    const root = signed.commitment.root.slice();
    root[0] ^= 1;
    await expect(verifyCommitment({ ...signed, commitment: { ...signed.commitment, root } })).rejects.toMatchObject({ name: 'CommitmentSignatureError' });
  });

  it('rejects a peer id that is not one', async () => {
    await expect(verifyCommitment({ ...signed, commitment: { ...signed.commitment, peerId: 'not-a-peer' } })).rejects.toMatchObject({ name: 'CommitmentSignatureError' });
  });

  it.each([
    ['a truncated buffer', (b: Uint8Array) => b.subarray(0, 20)],
    ['bad magic', (b: Uint8Array) => (b.set([0], 4), b)],
    ['trailing bytes', (b: Uint8Array) => Uint8Array.from([...b, 0])],
  ])('decoding refuses %s with CommitmentFormatError', (_, damage) => {
    expect(() => decodeSignedCommitment(damage(encodeSignedCommitment(signed).slice()))).toThrow(expect.objectContaining({ name: 'CommitmentFormatError' }));
  });
});

describe('reveals', () => {
  let signed: SignedCommitment;
  beforeAll(async () => {
    signed = await signCommitment(records, META, await generateKeyPair('Ed25519'));
  });

  it('a valid reveal of the challenged steps passes', async () => {
    const reveal = await revealRecords(records, [0, 3, 6]);
    expect(reveal.map((r) => r.index)).toEqual([0, 3, 6]);
    await expect(verifyReveal(signed, reveal, [0, 3, 6])).resolves.toBeUndefined();
  });

  it('a record changed after signing fails', async () => {
    const reveal = await revealRecords(records, [3]);
    const outputSha256 = reveal[0].record.outputSha256.slice();
    outputSha256[5] ^= 0x80;
    await expect(verifyReveal(signed, [{ ...reveal[0], record: { ...reveal[0].record, outputSha256 } }])).rejects.toMatchObject({ name: 'RevealMismatchError' });
  });

  it('a fingerprint changed after signing fails', async () => {
    const [r] = await revealRecords(records, [2]);
    const values = r.record.output.values.slice();
    values[0] *= 1.5;
    await expect(verifyReveal(signed, [{ ...r, record: { ...r.record, output: { ...r.record.output, values } } }])).rejects.toMatchObject({ name: 'RevealMismatchError' });
  });

  it('another step\'s record offered for a challenged step fails', async () => {
    const [r] = await revealRecords(records, [4]);
    await expect(verifyReveal(signed, [{ ...r, index: 5 }])).rejects.toMatchObject({ name: 'RevealMismatchError' });
  });

  it('a reveal that leaves out a challenged step fails', async () => {
    await expect(verifyReveal(signed, await revealRecords(records, [1]), [1, 2])).rejects.toMatchObject({ name: 'RevealMismatchError' });
  });
});
