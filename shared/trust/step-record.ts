/**
 * A step record: what a serving stage commits to for one (request, step) it ran. The SHA-256 of
 * its input bytes lets the validator check the chain (this stage's input is the previous
 * stage's output) and that the revealed inputs are the ones served; the SHA-256 of its output
 * ties the record to the frame it forwarded; the fingerprint is what the replay is compared to;
 * the Merkle proof of its hand-off under the transcript its upstream sealed (handoff.ts; the
 * root and seal are in the commitment) proves who handed the stage that input. Written by the
 * step journal (step-journal.ts), leaves of the commitment's Merkle tree (commitment.ts),
 * revealed to the validator.
 *
 * Encoding (binary, little-endian, the header binary-header.ts's):
 *   0 magic "IMSR"  4 version u8 (2)  5..7 reserved  8 step u32  12 position u32  16 rows u32
 *   20 input SHA-256 (32)  52 output SHA-256 (32)  84 fingerprint length u32
 *   88 hand-off proof length u16 (32 bytes a node)  90 reserved u16  92 fingerprint, then the proof's nodes
 * Tensor bytes are hashed as a frame carries them: little-endian float32 (shared/protocol/frame.ts).
 */
import { InfermeshError, UsageError } from '../errors.ts';
import { binaryFormat, readDocument, startDocument } from '../protocol/binary-header.ts';
import { decodeFingerprint, encodeFingerprint, fingerprintHidden } from './fingerprint.ts';
import type { Fingerprint } from './fingerprint.ts';
import { sha256 } from '@noble/hashes/sha2.js';

/** Bytes that are not a step record. */
export class StepRecordFormatError extends InfermeshError {
  override name = 'StepRecordFormatError';
}

export interface StepRecord {
  step: number;
  /** absolute position of the step's first row */
  position: number;
  rows: number;
  inputSha256: Uint8Array;
  outputSha256: Uint8Array;
  output: Fingerprint;
  /** the Merkle proof of this step's hand-off under the transcript its upstream sealed (empty: none yet) */
  handoffProof: Uint8Array[];
}

export interface StepRecordMeta {
  step: number;
  position: number;
  rows: number;
}

const STEP_RECORD = binaryFormat({ magic: 'IMSR', version: 2, noun: 'step record', error: StepRecordFormatError });
/** Magic to the second reserved u16: every record's fixed part, before its fingerprint. */
const HEADER_BYTES = 92;

/**
 * SHA-256 of a tensor's bytes as they travel in a frame (little-endian float32, as every host we
 * run on is). @noble/hashes, synchronous: for the few KiB of a decode step's row WebCrypto's
 * per-call cost (a promise and a thread hop, ~0.1 ms) is four times the hashing itself, and a
 * stage hashes two rows per step.
 */
export async function tensorSha256(data: Float32Array): Promise<Uint8Array> {
  return sha256(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
}

/** Hashes a step's input and output and fingerprints its output ([rows, width] each). */
export async function recordStep(input: Float32Array, output: Float32Array, meta: StepRecordMeta): Promise<StepRecord> {
  const { step, position, rows } = meta;
  if (![step, position, rows].every((n) => Number.isInteger(n) && n >= 0 && n <= 0xffffffff) || rows === 0) {
    throw new UsageError(`bad step meta: step ${step}, position ${position}, rows ${rows}`);
  }
  if (output.length === 0 || output.length % rows !== 0) throw new UsageError(`output of ${output.length} values is not ${rows} rows`);
  if (input.length !== output.length) throw new UsageError(`input of ${input.length} values and output of ${output.length} differ in shape`);
  const [inputSha256, outputSha256] = await Promise.all([tensorSha256(input), tensorSha256(output)]);
  return { step, position, rows, inputSha256, outputSha256, output: fingerprintHidden(output, rows, output.length / rows), handoffProof: [] };
}

export function encodeStepRecord(record: StepRecord): Uint8Array {
  if (record.inputSha256.length !== 32 || record.outputSha256.length !== 32) throw new UsageError('step record hashes must be 32 bytes');
  if (record.output.rows !== record.rows) throw new UsageError(`step record of ${record.rows} rows has a fingerprint of ${record.output.rows}`);
  if (record.handoffProof.length > 64 || record.handoffProof.some((n) => n.byteLength !== 32)) throw new UsageError('a hand-off proof is at most 64 nodes of 32 bytes');
  const fp = encodeFingerprint(record.output);
  const proofBytes = 32 * record.handoffProof.length;
  const { bytes, view } = startDocument(STEP_RECORD, HEADER_BYTES + fp.byteLength + proofBytes);
  view.setUint32(8, record.step, true);
  view.setUint32(12, record.position, true);
  view.setUint32(16, record.rows, true);
  bytes.set(record.inputSha256, 20);
  bytes.set(record.outputSha256, 52);
  view.setUint32(84, fp.byteLength, true);
  view.setUint16(88, proofBytes, true);
  bytes.set(fp, HEADER_BYTES);
  record.handoffProof.forEach((node, i) => bytes.set(node, HEADER_BYTES + fp.byteLength + 32 * i));
  return bytes;
}

export function decodeStepRecord(bytes: Uint8Array): StepRecord {
  const record = readDocument(STEP_RECORD, bytes, HEADER_BYTES);
  record.skip(3, 'reserved bytes');
  const step = record.u32('the step');
  const position = record.u32('the position');
  const rows = record.u32('the rows');
  const inputSha256 = record.copy(32, 'the input hash');
  const outputSha256 = record.copy(32, 'the output hash');
  const fpLength = record.u32('the fingerprint length');
  const proofLength = record.u16('the proof length');
  record.skip(2, 'a reserved u16');
  if (bytes.byteLength !== HEADER_BYTES + fpLength + proofLength) throw new StepRecordFormatError(`step record says ${HEADER_BYTES + fpLength + proofLength} bytes but has ${bytes.byteLength}`);
  if (proofLength % 32 !== 0) throw new StepRecordFormatError(`a hand-off proof of ${proofLength} bytes is not whole 32-byte nodes`);
  let output: Fingerprint;
  try {
    output = decodeFingerprint(record.subarray(fpLength, 'its fingerprint'));
  } catch (err) {
    throw new StepRecordFormatError(`its fingerprint is unreadable: ${(err as Error).message}`, { cause: err });
  }
  if (output.rows !== rows) throw new StepRecordFormatError(`step record of ${rows} rows has a fingerprint of ${output.rows}`);
  const handoffProof = Array.from({ length: proofLength / 32 }, (_, i) => record.copy(32, `proof node ${i}`));
  return { step, position, rows, inputSha256, outputSha256, output, handoffProof };
}
