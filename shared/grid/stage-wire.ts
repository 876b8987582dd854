/**
 * Messages on a STAGE_PROTOCOL stream (one stream per request per hop, upstream -> downstream,
 * each message length-prefixed by lpStream). The first byte says what follows:
 *
 *   1 OPEN   JSON StageOpen: the request id, the package, the whole route and the client
 *   2 FRAME  u8 hop count, u8 reserved, u16 reserved, then per hop already passed 8 bytes
 *            (f32 stage ms, u8 link: 1 = direct WebRTC, 2 = WebRTC through TURN, 0 = anything
 *            else (link-kind.ts), 3 reserved),
 *            then a hidden-state frame (shared/protocol/frame.ts), 4-byte aligned
 *   3 ERROR  JSON StageFailure, sent back upstream to whoever sent the offending message
 *   4 END    JSON { requestId }: the request is over; stages free its cache
 *   5 SEAL   u8 reserved ×3, u32 steps, then the sender's seal of the transcript of the
 *            request's frames 0..steps-1 (shared/trust/handoff.ts), sent once, before its END
 *
 * Hop records let the client see each stage's compute time and whether every link the tensor
 * crossed was direct, through TURN or relayed, without a shared clock. The kind byte is binary-header.ts's message tag.
 */
import { InfermeshError } from '../errors.ts';
import { BinaryReader, startMessage, tagged } from '../protocol/binary-header.ts';
import { FrameError } from '../protocol/frame.ts';
import type { PeerAddress, RouteHop } from './protocol.ts';
import type { LinkKind } from './link-kind.ts';

export const MSG_OPEN = 1;
export const MSG_FRAME = 2;
export const MSG_ERROR = 3;
export const MSG_END = 4;
export const MSG_SEAL = 5;

/**
 * Largest stage message: a 2,048-token prefill of a 4,096-wide model in f32 is 32 MiB; beyond
 * that a client must split its prefill. Stated so a peer cannot make another allocate at will.
 */
export const MAX_STAGE_MESSAGE_BYTES = 32 << 20;
/** More stages than this in one route is a mistake or an attack. */
export const MAX_HOPS = 64;

export interface StageOpen {
  requestId: string;
  packageId: string;
  hops: RouteHop[];
  client: PeerAddress;
}

export interface StageFailure {
  requestId?: string;
  /** the stable error name, e.g. FrameError, WrongRequestError, or an engine's UnknownRequestError */
  name: string;
  message: string;
  /** the peer that refused */
  peerId: string;
  /** StageLostError only: the next stage, whose link the refusing peer lost */
  lost?: string;
}

export interface HopRecord {
  stageMs: number;
  /** how the stage's link to where it sent the frame on carried it */
  link: LinkKind;
}

const LINK_BYTE: Record<LinkKind, number> = { relayed: 0, direct: 1, turn: 2 };
const BYTE_LINK: LinkKind[] = ['relayed', 'direct', 'turn'];

export type StageMessage =
  | { kind: 'open'; open: StageOpen }
  | { kind: 'frame'; hops: HopRecord[]; frame: Uint8Array }
  | { kind: 'error'; failure: StageFailure }
  | { kind: 'end'; requestId: string }
  | { kind: 'seal'; steps: number; seal: Uint8Array };

/** A stage message that cannot be parsed; the receiver answers with an ERROR naming the problem. */
export class StageMessageError extends InfermeshError {
  override name = 'StageMessageError';
}

/** A peer refused a step of a request (the error travels back to the client with its name). */
export class StageFailedError extends InfermeshError {
  override name = 'StageFailedError';
  readonly failure: StageFailure;
  constructor(failure: StageFailure) {
    super(`${failure.name} from ${failure.peerId}: ${failure.message}`);
    this.failure = failure;
  }
}

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

const jsonMessage = (kind: number, value: unknown) => tagged(kind, utf8.encode(JSON.stringify(value)));

export const encodeOpen = (open: StageOpen) => jsonMessage(MSG_OPEN, open);
export const encodeFailure = (failure: StageFailure) => jsonMessage(MSG_ERROR, failure);

/**
 * Sends `err` back to whoever sent the offending message, by its stable name and one-line
 * message. Best effort: a sender that has gone cannot be told.
 */
export function refuse(to: { write(bytes: Uint8Array): Promise<void> }, err: unknown, peerId: string, requestId?: string): Promise<void> {
  const e = err as Partial<InfermeshError> & Error;
  return to.write(encodeFailure({ requestId, name: e.name ?? 'Error', message: e.shortMessage ?? e.message, peerId })).catch(() => undefined);
}
export const encodeEnd = (requestId: string) => jsonMessage(MSG_END, { requestId });

export function encodeFrameMessage(hops: HopRecord[], frame: Uint8Array): Uint8Array {
  if (hops.length > MAX_HOPS) throw new StageMessageError(`${hops.length} hops exceed the limit of ${MAX_HOPS}`);
  const at = 4 + 8 * hops.length;
  const { bytes: out, view } = startMessage(MSG_FRAME, at + frame.byteLength);
  out[1] = hops.length;
  hops.forEach((h, i) => {
    view.setFloat32(4 + 8 * i, h.stageMs, true);
    view.setUint8(8 + 8 * i, LINK_BYTE[h.link]);
  });
  out.set(frame, at);
  return out;
}

/** Ed25519 signatures are 64 bytes; a little room for other key types, none for payloads. */
const MAX_SEAL_BYTES = 512;

export function encodeSeal(steps: number, seal: Uint8Array): Uint8Array {
  const { bytes, view } = startMessage(MSG_SEAL, 8 + seal.byteLength);
  view.setUint32(4, steps, true);
  bytes.set(seal, 8);
  return bytes;
}

export function decodeStageMessage(bytes: Uint8Array): StageMessage {
  if (bytes.byteLength === 0) throw new StageMessageError('empty stage message');
  const kind = bytes[0];
  if (kind === MSG_SEAL) {
    if (bytes.byteLength <= 8 || bytes.byteLength > 8 + MAX_SEAL_BYTES) throw new StageMessageError(`a seal message of ${bytes.byteLength} bytes holds no seal of 1..${MAX_SEAL_BYTES} bytes`);
    const body = new BinaryReader(bytes, 'seal message', StageMessageError, 4);
    return { kind: 'seal', steps: body.u32('the step count'), seal: body.copy(body.left, 'the seal') };
  }
  if (kind === MSG_FRAME) {
    if (bytes.byteLength < 4) throw new FrameError('frame message shorter than its hop header');
    const count = bytes[1];
    const at = 4 + 8 * count;
    if (count > MAX_HOPS || bytes.byteLength < at) throw new FrameError(`frame message announces ${count} hop records it does not hold`);
    const records = new BinaryReader(bytes, 'frame message', FrameError, 4);
    const hops = Array.from({ length: count }, () => {
      const hop: HopRecord = { stageMs: records.f32('a hop record'), link: BYTE_LINK[records.u8('a hop record')] ?? 'relayed' };
      records.skip(3, 'a hop record');
      return hop;
    });
    return { kind: 'frame', hops, frame: records.subarray(records.left, 'the frame') };
  }
  let value: Record<string, unknown>;
  try {
    value = JSON.parse(fromUtf8.decode(bytes.subarray(1)));
  } catch (err) {
    throw new StageMessageError(`stage message of kind ${kind} is not valid JSON`, { cause: err });
  }
  if (typeof value !== 'object' || value === null) throw new StageMessageError(`stage message of kind ${kind} is not an object`);
  if (kind === MSG_OPEN) return { kind: 'open', open: checkOpen(value) };
  if (kind === MSG_ERROR) {
    if (typeof value.name !== 'string' || typeof value.message !== 'string') throw new StageMessageError('error message lacks name or message');
    if (value.lost !== undefined && typeof value.lost !== 'string') throw new StageMessageError('error message names a lost peer that is not a peer id');
    return { kind: 'error', failure: value as unknown as StageFailure };
  }
  if (kind === MSG_END) {
    if (typeof value.requestId !== 'string') throw new StageMessageError('end message lacks a request id');
    return { kind: 'end', requestId: value.requestId };
  }
  throw new StageMessageError(`unknown stage message kind ${kind}`);
}

function checkPeer(value: unknown, what: string): PeerAddress {
  const p = value as PeerAddress;
  if (!p || typeof p.peerId !== 'string' || !Array.isArray(p.addrs) || !p.addrs.every((a) => typeof a === 'string')) {
    throw new StageMessageError(`${what} is not a peer address ({ peerId, addrs[] })`);
  }
  return p;
}

function checkOpen(value: Record<string, unknown>): StageOpen {
  if (typeof value.requestId !== 'string' || value.requestId.length === 0 || value.requestId.length > 128) throw new StageMessageError('open message needs a request id of 1..128 characters');
  if (typeof value.packageId !== 'string') throw new StageMessageError('open message lacks a package id');
  if (!Array.isArray(value.hops) || value.hops.length === 0 || value.hops.length > MAX_HOPS) throw new StageMessageError(`open message needs 1..${MAX_HOPS} hops`);
  value.hops.forEach((h: RouteHop, i: number) => {
    checkPeer(h, `hop ${i}`);
    if (!h.layers || !Number.isInteger(h.layers.start) || !Number.isInteger(h.layers.end)) throw new StageMessageError(`hop ${i} lacks a layer range`);
  });
  checkPeer(value.client, 'client');
  return value as unknown as StageOpen;
}
