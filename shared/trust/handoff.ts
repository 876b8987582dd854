/**
 * Hand-off seals: whoever sends hidden-state frames down a route (the client to the first
 * stage, each stage to the next) signs, with its libp2p key, what it handed over. Each frame is
 * a hand-off (the request, the step, its position and rows, the SHA-256 of the tensor bytes);
 * when the request ends the sender signs the Merkle root over all of them, once, and sends that
 * seal before its END. The receiver checks the seal against the inputs it recorded before it
 * commits, puts the root and the seal in its commitment, and each step record carries its
 * hand-off's Merkle proof (commitment.ts, step-record.ts). One signature per request and hop,
 * and per frame only a hash: nothing is signed on a frame's path.
 *
 * That is what lets the validator say who lied when two adjacent stages disagree about the
 * tensor between them: the receiver's commitment holds the sender's seal over the bytes it got.
 * If the seal holds and the sender committed to other output bytes, the sender signed two
 * contradicting statements (it equivocated); if the receiver's committed inputs are not the
 * ones its upstream sealed, the receiver claims inputs nobody handed it. Either way one peer's
 * own signatures convict it. It also ties the first stage's input to the client: only the
 * client's key can seal the embedding rows it sent.
 *
 * Encodings (binary, little-endian, the header binary-header.ts's; never decoded: they are
 * hashed and signed):
 *   hand-off (a Merkle leaf): "IMHO" magic, version u8 (1), 3 reserved, step u32, position u32,
 *     rows u32, tensor SHA-256 (32), request id length u16, request id (utf-8)
 *   sealed transcript: "IMHT" magic, version u8 (1), 3 reserved, steps u32, root (32),
 *     request id length u16, request id (utf-8)
 */
import type { PrivateKey } from '@libp2p/interface';
import { InfermeshError, UsageError } from '../errors.ts';
import { binaryFormat, startDocument } from '../protocol/binary-header.ts';
import { frameRows } from '../protocol/frame.ts';
import type { HiddenFrame } from '../protocol/frame.ts';
import { merkleProofs, merkleRoot, verifyMerkleProof } from './merkle.ts';
import { peerPublicKey } from './peer-key.ts';
import { tensorSha256 } from './step-record.ts';

/** A seal that is missing, malformed, or not by the key it should be by. */
export class HandoffSealError extends InfermeshError {
  override name = 'HandoffSealError';
}

export interface Handoff {
  requestId: string;
  step: number;
  position: number;
  rows: number;
  /** SHA-256 of the tensor bytes handed over (tensorSha256 in step-record.ts) */
  tensorSha256: Uint8Array;
}

/** What a sender signs when a request ends: the Merkle root over its hand-offs, steps 0..steps-1. */
export interface Transcript {
  requestId: string;
  steps: number;
  root: Uint8Array;
}

const HANDOFF = binaryFormat({ magic: 'IMHO', version: 1, noun: 'hand-off', error: HandoffSealError });
const TRANSCRIPT = binaryFormat({ magic: 'IMHT', version: 1, noun: 'transcript', error: HandoffSealError });
const utf8 = new TextEncoder();

function idBytes(requestId: string): Uint8Array {
  const id = utf8.encode(requestId);
  if (id.byteLength === 0 || id.byteLength > 0xffff) throw new UsageError('a hand-off needs a request id of 1..65535 bytes');
  return id;
}

const u32 = (...ns: number[]) => {
  if (!ns.every((n) => Number.isInteger(n) && n >= 0 && n <= 0xffffffff)) throw new UsageError(`hand-off numbers must be u32, got ${ns.join(', ')}`);
};

export function encodeHandoff(h: Handoff): Uint8Array {
  const id = idBytes(h.requestId);
  if (h.tensorSha256.byteLength !== 32) throw new UsageError('a hand-off hash must be 32 bytes');
  u32(h.step, h.position, h.rows);
  const { bytes, view } = startDocument(HANDOFF, 54 + id.byteLength);
  view.setUint32(8, h.step, true);
  view.setUint32(12, h.position, true);
  view.setUint32(16, h.rows, true);
  bytes.set(h.tensorSha256, 20);
  view.setUint16(52, id.byteLength, true);
  bytes.set(id, 54);
  return bytes;
}

export function encodeTranscript(t: Transcript): Uint8Array {
  const id = idBytes(t.requestId);
  if (t.root.byteLength !== 32) throw new UsageError('a transcript root must be 32 bytes');
  u32(t.steps);
  const { bytes, view } = startDocument(TRANSCRIPT, 46 + id.byteLength);
  view.setUint32(8, t.steps, true);
  bytes.set(t.root, 12);
  view.setUint16(44, id.byteLength, true);
  bytes.set(id, 46);
  return bytes;
}

/** The hand-off a hidden-state frame (shared/protocol/frame.ts) is; the sender parsed or built it already. */
export async function handoffOfFrame(frame: HiddenFrame): Promise<Handoff> {
  const { requestId, step, position, data } = frame;
  return { requestId, step, position, rows: frameRows(frame), tensorSha256: await tensorSha256(data) };
}

/** The transcript of a request's hand-offs, which must be steps 0..n-1 in order. */
export async function transcriptOf(handoffs: Handoff[]): Promise<Transcript> {
  if (handoffs.length === 0) throw new UsageError('a transcript needs at least one hand-off');
  const { requestId } = handoffs[0];
  handoffs.forEach((h, i) => {
    if (h.step !== i || h.requestId !== requestId) throw new UsageError(`hand-off ${i} is step ${h.step} of ${h.requestId}; a transcript covers steps 0..n-1 of one request`);
  });
  return { requestId, steps: handoffs.length, root: await merkleRoot(handoffs.map(encodeHandoff)) };
}

/** Each hand-off's Merkle proof under its transcript's root (transcriptOf). */
export function handoffProofs(handoffs: Handoff[]): Promise<Uint8Array[][]> {
  return merkleProofs(handoffs.map(encodeHandoff));
}

/** True when `handoff` is step `handoff.step` of the transcript. */
export function handoffInTranscript(handoff: Handoff, proof: Uint8Array[], transcript: Transcript): Promise<boolean> {
  return verifyMerkleProof(encodeHandoff(handoff), handoff.step, transcript.steps, proof, transcript.root);
}

/** The sender's seal: its signature over the transcript. */
export async function sealTranscript(transcript: Transcript, privateKey: PrivateKey): Promise<Uint8Array> {
  // Copied into a plain Uint8Array: in Node the key hands back a Buffer.
  return new Uint8Array(await privateKey.sign(encodeTranscript(transcript)));
}

/** True when `seal` is `sender`'s signature over the transcript. */
export async function transcriptSealed(transcript: Transcript, seal: Uint8Array, sender: string): Promise<boolean> {
  if (seal.byteLength === 0) return false;
  try {
    return await peerPublicKey(sender, HandoffSealError).verify(encodeTranscript(transcript), seal);
  } catch {
    return false;
  }
}
