/**
 * Hand-off seals: whoever sends a hidden-state frame down a route (the client to the first
 * stage, each stage to the next) signs, with its libp2p key, what it handed over: the request,
 * the step, its rows and the SHA-256 of the tensor bytes. The receiver keeps the seal in the
 * step record it commits to (step-record.ts), so a stage can prove where its input came from.
 *
 * That is what lets the validator say who lied when two adjacent stages disagree about the
 * tensor between them: the receiver's record holds the sender's seal over the bytes it got. If
 * the seal holds and the sender committed to other output bytes, the sender signed two
 * contradicting statements (it equivocated); if the seal does not hold over the input the
 * receiver committed to, the receiver claims an input nobody handed it. Either way one signed
 * statement convicts one peer. It also ties the first stage's input to the client: only the
 * client's key can seal the embedding rows it sent.
 *
 * The sender seals after the frame has gone out; the receiver checks seals when it commits, so
 * neither step waits on a signature.
 *
 * Sealed bytes (binary, little-endian): "IMHO" magic, version u8 (1), 3 reserved, step u32,
 * position u32, rows u32, tensor SHA-256 (32), request id length u16, request id (utf-8).
 */
import type { PrivateKey, PublicKey } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { InfermeshError, UsageError } from '../errors.ts';
import { decodeFrame } from '../protocol/frame.ts';
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

const MAGIC = 0x4f48_4d49; // "IMHO" read as little-endian u32
const VERSION = 1;
const utf8 = new TextEncoder();

export function encodeHandoff(h: Handoff): Uint8Array {
  const id = utf8.encode(h.requestId);
  if (id.byteLength === 0 || id.byteLength > 0xffff) throw new UsageError('a hand-off needs a request id of 1..65535 bytes');
  if (h.tensorSha256.byteLength !== 32) throw new UsageError('a hand-off hash must be 32 bytes');
  if (![h.step, h.position, h.rows].every((n) => Number.isInteger(n) && n >= 0 && n <= 0xffffffff)) throw new UsageError(`bad hand-off step ${h.step}, position ${h.position}, rows ${h.rows}`);
  const bytes = new Uint8Array(54 + id.byteLength);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint8(4, VERSION);
  view.setUint32(8, h.step, true);
  view.setUint32(12, h.position, true);
  view.setUint32(16, h.rows, true);
  bytes.set(h.tensorSha256, 20);
  view.setUint16(52, id.byteLength, true);
  bytes.set(id, 54);
  return bytes;
}

/** The sender's signature over a hand-off. */
export async function sealHandoff(handoff: Handoff, privateKey: PrivateKey): Promise<Uint8Array> {
  // Copied into a plain Uint8Array: in Node the key hands back a Buffer.
  return new Uint8Array(await privateKey.sign(encodeHandoff(handoff)));
}

/** The public key inlined in an Ed25519 peer id, or a HandoffSealError. */
export function publicKeyOf(peerId: string): PublicKey {
  let key: PublicKey | undefined;
  try {
    key = (peerIdFromString(peerId) as { publicKey?: PublicKey }).publicKey;
  } catch (err) {
    throw new HandoffSealError(`${JSON.stringify(peerId)} is not a peer id`, { cause: err });
  }
  if (!key) throw new HandoffSealError(`peer id ${peerId} does not carry its public key`);
  return key;
}

/** True when `seal` is `sender`'s signature over `handoff`. */
export async function handoffSealed(handoff: Handoff, seal: Uint8Array, sender: string | PublicKey): Promise<boolean> {
  const key = typeof sender === 'string' ? publicKeyOf(sender) : sender;
  if (seal.byteLength === 0) return false;
  try {
    return await key.verify(encodeHandoff(handoff), seal);
  } catch {
    return false;
  }
}

/** The hand-off a hidden-state frame (shared/protocol/frame.ts) is: what its sender seals. */
export async function handoffOfFrame(frame: Uint8Array): Promise<Handoff> {
  const { requestId, step, position, dims, data } = decodeFrame(frame);
  const rows = dims.length >= 2 ? dims[dims.length - 2] : 1;
  return { requestId, step, position, rows, tensorSha256: await tensorSha256(data) };
}
