/**
 * A stage's signed commitment to what it computed for one request: the Merkle root over its
 * step records (merkle.ts over encodeStepRecord), signed with the stage's libp2p key when the
 * request ends. The validator checks the signature against the peer id (Ed25519 peer ids
 * inline their public key), draws challenges only after it holds the commitment
 * (challenge.ts), and checks each revealed record against the root before replaying it; a
 * stage cannot change a record after signing without breaking the root, nor deny a signature.
 *
 * Commitment encoding, the bytes that are signed (binary, little-endian, the header binary-header.ts's):
 *   0 magic "IMCM"  4 version u8 (2)  5 reserved u8  6 package id length u16  then package id (utf-8)
 *   then request id length u16 + utf-8, peer id length u16 + utf-8, upstream peer id length u16 + utf-8,
 *   layers start u32, end u32, step count u32, root (32), upstream's transcript root (32),
 *   created at u64 (ms since the epoch), upstream's seal length u16, upstream's seal
 * Signed commitment: commitment length u32, commitment, signature length u16, signature.
 */
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { InfermeshError, UsageError } from '../errors.ts';
import { binaryFormat, readDocument, startDocument } from '../protocol/binary-header.ts';
import { merkleProofs, merkleRoot, verifyMerkleProof } from './merkle.ts';
import { peerPublicKey } from './peer-key.ts';
import { encodeStepRecord } from './step-record.ts';
import type { StepRecord } from './step-record.ts';

/** Bytes that are not a (signed) commitment. */
export class CommitmentFormatError extends InfermeshError {
  override name = 'CommitmentFormatError';
}

/** The signature is not by the key of the commitment's peer id (or that id carries no key). */
export class CommitmentSignatureError extends InfermeshError {
  override name = 'CommitmentSignatureError';
}

/** A revealed record is not the one committed to (wrong proof, index, or changed bytes). */
export class RevealMismatchError extends InfermeshError {
  override name = 'RevealMismatchError';
}

export interface Commitment {
  version: 2;
  /** the model package's manifest id */
  packageId: string;
  requestId: string;
  /** the signing stage's libp2p peer id */
  peerId: string;
  /**
   * the peer that handed the stage its inputs (the client, or the stage before it); it sealed
   * the transcript of those hand-offs (handoff.ts) whose root and seal follow, and each step
   * record carries its hand-off's proof under that root
   */
  upstream: string;
  upstreamRoot: Uint8Array;
  upstreamSeal: Uint8Array;
  /** the stage's layers, end exclusive */
  layers: { start: number; end: number };
  stepCount: number;
  /** Merkle root over the encoded step records 0..stepCount-1 */
  root: Uint8Array;
  /** ms since the epoch, by the stage's clock */
  createdAt: number;
}

export interface SignedCommitment {
  commitment: Commitment;
  signature: Uint8Array;
}

export interface CommitmentMeta {
  packageId: string;
  requestId: string;
  upstream: string;
  upstreamRoot: Uint8Array;
  upstreamSeal: Uint8Array;
  layers: { start: number; end: number };
  createdAt?: number;
}

export interface RevealedRecord {
  index: number;
  record: StepRecord;
  proof: Uint8Array[];
}

const VERSION = 2;
const COMMITMENT = binaryFormat({ magic: 'IMCM', version: VERSION, noun: 'commitment', error: CommitmentFormatError });
/** Ids are short; a cap keeps a header from being used to allocate memory. */
const MAX_ID_BYTES = 1024;
const utf8 = new TextEncoder();

export function encodeCommitment(c: Commitment): Uint8Array {
  const ids = [c.packageId, c.requestId, c.peerId, c.upstream].map((s) => utf8.encode(s));
  if (ids.some((b) => b.byteLength === 0 || b.byteLength > MAX_ID_BYTES)) throw new UsageError(`commitment ids must be 1..${MAX_ID_BYTES} bytes`);
  if (c.root.length !== 32 || c.upstreamRoot.length !== 32) throw new UsageError('commitment roots must be 32 bytes');
  if (c.upstreamSeal.byteLength > 0xffff) throw new UsageError('upstream seal too long');
  const u32s = [c.layers.start, c.layers.end, c.stepCount];
  if (!u32s.every((n) => Number.isInteger(n) && n >= 0 && n <= 0xffffffff) || c.layers.end <= c.layers.start) {
    throw new UsageError(`bad commitment layers ${c.layers.start}..${c.layers.end} or step count ${c.stepCount}`);
  }
  if (!Number.isSafeInteger(c.createdAt) || c.createdAt < 0) throw new UsageError(`bad commitment time ${c.createdAt}`);
  const { bytes, view } = startDocument(COMMITMENT, 6 + ids.reduce((n, b) => n + 2 + b.byteLength, 0) + 12 + 32 + 32 + 8 + 2 + c.upstreamSeal.byteLength);
  let at = 6;
  for (const id of ids) {
    view.setUint16(at, id.byteLength, true);
    bytes.set(id, at + 2);
    at += 2 + id.byteLength;
  }
  for (const n of u32s) {
    view.setUint32(at, n, true);
    at += 4;
  }
  bytes.set(c.root, at);
  bytes.set(c.upstreamRoot, at + 32);
  view.setBigUint64(at + 64, BigInt(c.createdAt), true);
  view.setUint16(at + 72, c.upstreamSeal.byteLength, true);
  bytes.set(c.upstreamSeal, at + 74);
  return bytes;
}

export function decodeCommitment(bytes: Uint8Array): Commitment {
  const fields = readDocument(COMMITMENT, bytes, 6);
  fields.skip(1, 'a reserved byte');
  const ids: string[] = [];
  for (let i = 0; i < 4; i++) {
    const n = fields.u16('an id length');
    if (n === 0 || n > MAX_ID_BYTES) throw new CommitmentFormatError(`id length ${n} outside 1..${MAX_ID_BYTES}`);
    ids.push(fields.utf8(n, 'an id'));
  }
  fields.need(12 + 64 + 8 + 2, 'its layers, roots, time and seal length');
  const layers = { start: fields.u32('the first layer'), end: fields.u32('the end layer') };
  const stepCount = fields.u32('the step count');
  const root = fields.copy(32, 'the root');
  const upstreamRoot = fields.copy(32, "the upstream's root");
  const createdAt = fields.u64('the time');
  const sealLength = fields.u16("the upstream's seal length");
  if (fields.left !== sealLength) throw new CommitmentFormatError(`commitment of ${bytes.byteLength} bytes does not end after its upstream seal of ${sealLength}`);
  if (layers.end <= layers.start) throw new CommitmentFormatError(`empty layer range ${layers.start}..${layers.end}`);
  if (createdAt > BigInt(Number.MAX_SAFE_INTEGER)) throw new CommitmentFormatError(`time ${createdAt} is out of range`);
  return {
    version: VERSION,
    packageId: ids[0],
    requestId: ids[1],
    peerId: ids[2],
    upstream: ids[3],
    layers,
    stepCount,
    root,
    upstreamRoot,
    upstreamSeal: fields.copy(sealLength, "the upstream's seal"),
    createdAt: Number(createdAt),
  };
}

/** Builds and signs the commitment to `records`, which must be steps 0..n-1 in order. */
export async function signCommitment(records: StepRecord[], meta: CommitmentMeta, privateKey: PrivateKey): Promise<SignedCommitment> {
  records.forEach((r, i) => {
    if (r.step !== i) throw new UsageError(`record ${i} is step ${r.step}; a commitment covers steps 0..n-1 in order`);
  });
  const commitment: Commitment = {
    version: VERSION,
    packageId: meta.packageId,
    requestId: meta.requestId,
    peerId: peerIdFromPrivateKey(privateKey).toString(),
    upstream: meta.upstream,
    upstreamRoot: meta.upstreamRoot,
    upstreamSeal: meta.upstreamSeal,
    layers: { start: meta.layers.start, end: meta.layers.end },
    stepCount: records.length,
    root: await merkleRoot(records.map(encodeStepRecord)),
    createdAt: meta.createdAt ?? Date.now(),
  };
  // Copied into a plain Uint8Array: in Node the key hands back a Buffer.
  return { commitment, signature: new Uint8Array(await privateKey.sign(encodeCommitment(commitment))) };
}

/** Throws CommitmentSignatureError unless the signature is by the key of `commitment.peerId`. */
export async function verifyCommitment(signed: SignedCommitment): Promise<void> {
  const { peerId } = signed.commitment;
  const key = peerPublicKey(peerId, CommitmentSignatureError);
  let ok = false;
  try {
    ok = await key.verify(encodeCommitment(signed.commitment), signed.signature);
  } catch (err) {
    throw new CommitmentSignatureError(`the signature of ${peerId}'s commitment cannot be checked`, { cause: err });
  }
  if (!ok) throw new CommitmentSignatureError(`the commitment for request ${signed.commitment.requestId} is not signed by ${peerId}`);
}

export function encodeSignedCommitment(signed: SignedCommitment): Uint8Array {
  const body = encodeCommitment(signed.commitment);
  if (signed.signature.byteLength > 0xffff) throw new UsageError('signature too long');
  const bytes = new Uint8Array(4 + body.byteLength + 2 + signed.signature.byteLength);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, body.byteLength, true);
  bytes.set(body, 4);
  view.setUint16(4 + body.byteLength, signed.signature.byteLength, true);
  bytes.set(signed.signature, 6 + body.byteLength);
  return bytes;
}

export function decodeSignedCommitment(bytes: Uint8Array): SignedCommitment {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 6) throw new CommitmentFormatError(`signed commitment of ${bytes.byteLength} bytes is too short`);
  const n = view.getUint32(0, true);
  if (4 + n + 2 > bytes.byteLength) throw new CommitmentFormatError(`commitment length ${n} runs past the end`);
  const commitment = decodeCommitment(bytes.subarray(4, 4 + n));
  const s = view.getUint16(4 + n, true);
  if (6 + n + s !== bytes.byteLength) throw new CommitmentFormatError(`signature length ${s} does not fit the ${bytes.byteLength} bytes`);
  return { commitment, signature: bytes.slice(6 + n) };
}

/** The challenged records with their inclusion proofs, as a stage answers a challenge. */
export async function revealRecords(records: StepRecord[], indices: number[]): Promise<RevealedRecord[]> {
  const leaves = records.map(encodeStepRecord);
  // A reveal proves steps 0..last: every subtree hashed once, not once per step.
  const proofs = indices.length > 0 ? await merkleProofs(leaves) : [];
  return indices.map((index) => {
    if (!Number.isInteger(index) || index < 0 || index >= records.length) throw new UsageError(`step ${index} is outside 0..${records.length - 1}`);
    return { index, record: records[index], proof: proofs[index] };
  });
}

/**
 * Throws RevealMismatchError unless every revealed record is step `index` under the committed
 * root, and, when `challenged` is given, the reveal answers exactly those indices. The
 * signature is checked by verifyCommitment, once, when the commitment arrives.
 */
export async function verifyReveal(signed: SignedCommitment, reveal: RevealedRecord[], challenged?: number[]): Promise<void> {
  const { root, stepCount, requestId } = signed.commitment;
  if (challenged) {
    const got = reveal.map((r) => r.index).sort((a, b) => a - b);
    const want = [...challenged].sort((a, b) => a - b);
    if (got.length !== want.length || got.some((x, i) => x !== want[i])) {
      throw new RevealMismatchError(`request ${requestId}: revealed steps [${got}] but challenged [${want}]`);
    }
  }
  for (const { index, record, proof } of reveal) {
    if (record.step !== index) throw new RevealMismatchError(`request ${requestId}: record at index ${index} says step ${record.step}`);
    let leaf: Uint8Array;
    try {
      leaf = encodeStepRecord(record);
    } catch (err) {
      throw new RevealMismatchError(`request ${requestId}: step ${index} is not a valid record`, { cause: err });
    }
    if (!(await verifyMerkleProof(leaf, index, stepCount, proof, root))) {
      throw new RevealMismatchError(`request ${requestId}: step ${index} does not match the committed root`);
    }
  }
}
