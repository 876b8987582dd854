/**
 * Messages on a TRUST_PROTOCOL stream: a stage that finished a request answers for it to the
 * validator (the server) over its WebSocket connection to the server, one stream per request,
 * each message length-prefixed by lpStream. The first byte says what follows:
 *
 *   1 COMMIT     the signed commitment over the request's step records (shared/trust/commitment.ts)
 *   2 CHALLENGE  JSON { steps, deadline }: the steps the validator will check, drawn after the
 *                commitment arrived, and when the answer must be in (ms since the epoch)
 *   3 REVEAL     u32 record count, then per record: u32 index, u32 record bytes, the record
 *                (step-record.ts), u32 proof hashes, 32 bytes each; then u32 input count, then
 *                per input: u32 value count, the f32 values (little-endian). Records and inputs
 *                cover steps 0..max(challenged): a step's output depends on every earlier step.
 *   4 RECEIPT    JSON { requestId, accepted: true }: the reveal matched the commitment and is queued for replay
 *   5 ERROR      JSON { name, message }: the message named was refused, and why
 *
 * Tensors stay binary; only control messages are JSON. The kind byte is binary-header.ts's
 * message tag.
 */
import { InfermeshError } from '../errors.ts';
import { BinaryReader, startMessage, tagged } from '../protocol/binary-header.ts';
import { FINGERPRINT_TOP_K } from '../trust/fingerprint.ts';

export const MSG_COMMIT = 1;
export const MSG_CHALLENGE = 2;
export const MSG_REVEAL = 3;
export const MSG_RECEIPT = 4;
export const MSG_TRUST_ERROR = 5;

/** Bytes of one hash in a Merkle proof. */
const HASH_BYTES = 32;
/** A step record's fixed part and a fingerprint's (step-record.ts, fingerprint.ts). */
const RECORD_HEADER_BYTES = 92 + 16;
/** Per revealed step: its index, record length and proof length (u32 each), and its input's value count. */
const STEP_FRAMING_BYTES = 4 * 4;
/** A fingerprint row: FINGERPRINT_TOP_K u16 indices and f16 values. */
const FINGERPRINT_ROW_BYTES = FINGERPRINT_TOP_K * 4;

/** A stage's messages other than REVEAL (COMMIT) and the validator's (CHALLENGE lists at most a context's steps) stay under this. */
export const MAX_TRUST_CONTROL_BYTES = 1 << 20;

/**
 * The largest REVEAL an honest stage of a model with this shape can send: every step of a
 * full context (a request has at most maxSeqLen steps, each of at least one row), each record
 * with its fingerprint rows and two Merkle proofs (its own under the commitment, its hand-off
 * under the upstream's seal) as deep as a tree of maxSeqLen leaves, and every input row in f32.
 * The validator reads no more than this, and reads all of it (the default 110M-parameter
 * model's is 7.9 MiB, past the 4 MiB a libp2p stream buffers by default).
 */
export function maxRevealBytes(config: { dim: number; maxSeqLen: number }): number {
  const steps = config.maxSeqLen;
  const depth = Math.ceil(Math.log2(Math.max(2, steps))) + 1;
  const perStep = STEP_FRAMING_BYTES + RECORD_HEADER_BYTES + 2 * depth * HASH_BYTES;
  // As many rows as steps at most: every row is a position of the context.
  const perRow = FINGERPRINT_ROW_BYTES + 4 * config.dim;
  return 1 + 4 + 4 + steps * (perStep + perRow);
}

/** A trust message that cannot be parsed. */
export class TrustMessageError extends InfermeshError {
  override name = 'TrustMessageError';
}

export interface Challenge {
  steps: number[];
  deadline: number;
}

export interface RevealedRecord {
  index: number;
  /** an encoded StepRecord */
  record: Uint8Array;
  proof: Uint8Array[];
}

export interface Reveal {
  records: RevealedRecord[];
  inputs: Float32Array[];
}

export interface TrustFailure {
  name: string;
  message: string;
}

export type TrustMessage =
  | { kind: 'commit'; commitment: Uint8Array }
  | { kind: 'challenge'; challenge: Challenge }
  | { kind: 'reveal'; reveal: Reveal }
  | { kind: 'receipt'; requestId: string; accepted: boolean }
  | { kind: 'error'; failure: TrustFailure };

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder('utf-8', { fatal: true });

export const encodeCommit = (commitment: Uint8Array) => tagged(MSG_COMMIT, commitment);
export const encodeChallenge = (challenge: Challenge) => tagged(MSG_CHALLENGE, utf8.encode(JSON.stringify(challenge)));
export const encodeReceipt = (requestId: string, accepted: boolean) => tagged(MSG_RECEIPT, utf8.encode(JSON.stringify({ requestId, accepted })));
export const encodeTrustFailure = (err: unknown) =>
  tagged(MSG_TRUST_ERROR, utf8.encode(JSON.stringify({ name: (err as Error)?.name ?? 'Error', message: (err as Error)?.message ?? String(err) })));

export function encodeReveal(reveal: Reveal): Uint8Array {
  let size = 1 + 4 + 4;
  for (const r of reveal.records) size += 12 + r.record.byteLength + 32 * r.proof.length;
  for (const input of reveal.inputs) size += 4 + input.byteLength;
  const { bytes, view } = startMessage(MSG_REVEAL, size);
  let at = 1;
  view.setUint32(at, reveal.records.length, true);
  at += 4;
  for (const r of reveal.records) {
    view.setUint32(at, r.index, true);
    view.setUint32(at + 4, r.record.byteLength, true);
    bytes.set(r.record, at + 8);
    at += 8 + r.record.byteLength;
    view.setUint32(at, r.proof.length, true);
    at += 4;
    for (const hash of r.proof) {
      if (hash.byteLength !== 32) throw new TrustMessageError(`a Merkle proof hash is 32 bytes, not ${hash.byteLength}`);
      bytes.set(hash, at);
      at += 32;
    }
  }
  view.setUint32(at, reveal.inputs.length, true);
  at += 4;
  for (const input of reveal.inputs) {
    view.setUint32(at, input.length, true);
    bytes.set(new Uint8Array(input.buffer, input.byteOffset, input.byteLength), at + 4);
    at += 4 + input.byteLength;
  }
  return bytes;
}

function decodeReveal(bytes: Uint8Array): Reveal {
  // Copies, never views: inputs are viewed as Float32Arrays, which need 4-byte alignment.
  const r = new BinaryReader(bytes, 'REVEAL', TrustMessageError, 1);
  const records: RevealedRecord[] = [];
  const recordCount = r.u32('the record count');
  for (let i = 0; i < recordCount; i++) {
    const index = r.u32(`record ${i}'s index`);
    const record = r.copy(r.u32(`record ${i}'s length`), `record ${i}`);
    const proofCount = r.u32(`record ${i}'s proof length`);
    if (proofCount > 64) throw new TrustMessageError(`record ${i} has a ${proofCount}-hash proof; a tree of 2^64 steps is not a request`);
    const proof = Array.from({ length: proofCount }, (_, h) => r.copy(32, `record ${i}'s proof hash ${h}`));
    records.push({ index, record, proof });
  }
  const inputs: Float32Array[] = [];
  const inputCount = r.u32('the input count');
  for (let i = 0; i < inputCount; i++) {
    const count = r.u32(`input ${i}'s value count`);
    const raw = r.copy(count * 4, `input ${i}`);
    inputs.push(new Float32Array(raw.buffer, raw.byteOffset, count));
  }
  if (!r.done()) throw new TrustMessageError(`REVEAL has ${bytes.byteLength} bytes, more than its records and inputs`);
  return { records, inputs };
}

/** The JSON object after the kind byte; anything else (an array, null, a number) is refused by name. */
function json(bytes: Uint8Array, kind: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(fromUtf8.decode(bytes.subarray(1)));
  } catch (err) {
    throw new TrustMessageError(`${kind} is not valid JSON: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new TrustMessageError(`${kind} must be a JSON object`);
  return value as Record<string, unknown>;
}

export function decodeTrustMessage(bytes: Uint8Array): TrustMessage {
  if (bytes.byteLength === 0) throw new TrustMessageError('an empty trust message');
  switch (bytes[0]) {
    case MSG_COMMIT:
      return { kind: 'commit', commitment: new Uint8Array(bytes.subarray(1)) };
    case MSG_CHALLENGE: {
      const { steps, deadline } = json(bytes, 'CHALLENGE');
      if (!Array.isArray(steps) || !steps.every((s) => Number.isInteger(s) && s >= 0) || typeof deadline !== 'number') {
        throw new TrustMessageError('CHALLENGE needs steps (non-negative integers) and a deadline');
      }
      return { kind: 'challenge', challenge: { steps: steps as number[], deadline } };
    }
    case MSG_REVEAL:
      return { kind: 'reveal', reveal: decodeReveal(bytes) };
    case MSG_RECEIPT: {
      const { requestId, accepted } = json(bytes, 'RECEIPT');
      if (typeof requestId !== 'string' || typeof accepted !== 'boolean') throw new TrustMessageError('RECEIPT needs a requestId (string) and accepted (boolean)');
      return { kind: 'receipt', requestId, accepted };
    }
    case MSG_TRUST_ERROR: {
      const { name, message } = json(bytes, 'ERROR');
      if (typeof name !== 'string' || typeof message !== 'string') throw new TrustMessageError('ERROR needs a name and a message (strings)');
      return { kind: 'error', failure: { name, message } };
    }
    default:
      throw new TrustMessageError(`unknown trust message kind ${bytes[0]}`);
  }
}
