/**
 * The piece exchange on PIECES_PROTOCOL, peer to peer over direct WebRTC. A request is a
 * length-prefixed JSON control message `{ packageId, piece }`; the answer is one length-prefixed
 * binary message whose first byte is a status: 0 = ok (the piece bytes follow), 1 = not held,
 * 2 = bad request (a UTF-8 reason follows). A requester may send several requests on one stream,
 * one after the other. Donors and SDK clients serve their PieceStore with servePieces; the swarm
 * fetcher asks with requestPiece. The server never trusts a request and never crashes on one.
 * The status byte is binary-header.ts's message tag.
 */
import { lpStream } from '@libp2p/utils';
import type { LengthPrefixedStream } from '@libp2p/utils';
import type { Libp2p, Stream } from '@libp2p/interface';
import { InfermeshError } from '../errors.ts';
import { PIECE_SIZE } from '../model/manifest.ts';
import { MAX_CONTROL_BYTES } from '../grid/protocol.ts';
import { PIECES_PROTOCOL } from '../grid/protocol-ids.ts';
import { nextMessage } from '../grid/lp-stream.ts';
import { tagged } from '../protocol/binary-header.ts';
import type { PieceKey } from './piece-plan.ts';
import type { PieceStore } from './piece-store.ts';

export const PIECE_OK = 0;
export const PIECE_NOT_HELD = 1;
export const PIECE_BAD_REQUEST = 2;

export interface PieceRequestMessage {
  packageId: string;
  piece: PieceKey;
}

export type PieceAnswer = { status: 'ok'; bytes: Uint8Array } | { status: 'not-held' } | { status: 'bad-request'; reason: string };

/** A peer broke the piece protocol (an answer with no or an unknown status byte). */
export class PieceProtocolError extends InfermeshError {
  override name = 'PieceProtocolError';
}

export interface ServePiecesOptions {
  store: PieceStore;
  /** the packages this node shares (default: every package in the store) */
  packageIds?: () => Set<string>;
}

/** Registers the piece server on a libp2p node (direct connections only: libp2p refuses relayed ones by default). */
export async function servePieces(node: Pick<Libp2p, 'handle'>, options: ServePiecesOptions): Promise<void> {
  await node.handle(PIECES_PROTOCOL, (stream) => handlePieceStream(stream, options));
}

/** Answers the requests on one inbound stream until the requester closes it. */
export async function handlePieceStream(stream: Stream, options: ServePiecesOptions): Promise<void> {
  const lp = lpStream(stream, { maxDataLength: MAX_CONTROL_BYTES });
  try {
    for (;;) {
      const next = await nextMessage(lp);
      if (next.kind === 'end') break; // the requester is done, or gone
      if (next.kind === 'unframed') {
        // The framing is lost: answer once, then end the stream.
        await lp.write(badRequest(`request is not a length-prefixed message of at most ${MAX_CONTROL_BYTES} bytes (${next.error.message})`));
        break;
      }
      await lp.write(await answer(next.bytes, options));
    }
    await stream.close();
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)));
  }
}

async function answer(request: Uint8Array, options: ServePiecesOptions): Promise<Uint8Array> {
  const parsed = parsePieceRequest(request);
  if (typeof parsed === 'string') return badRequest(parsed);
  if (options.packageIds && !options.packageIds().has(parsed.packageId)) return tagged(PIECE_NOT_HELD);
  let bytes: Uint8Array | undefined;
  try {
    bytes = await options.store.get(parsed.packageId, parsed.piece);
  } catch {
    bytes = undefined; // a store that cannot read a piece does not hold it, as far as peers can tell
  }
  if (!bytes) return tagged(PIECE_NOT_HELD);
  const message = tagged(PIECE_OK, bytes);
  return message;
}

/** The request, or why it is refused (the reason goes back to the asking peer). */
export function parsePieceRequest(bytes: Uint8Array): PieceRequestMessage | string {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return 'request is not UTF-8 JSON';
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'request must be a JSON object {"packageId", "piece"}';
  const { packageId, piece } = value as Record<string, unknown>;
  if (typeof packageId !== 'string' || packageId.length === 0) return 'request.packageId must be a non-empty string';
  if (typeof piece !== 'string' || !/^.+#(0|[1-9][0-9]*)$/s.test(piece)) return 'request.piece must be a piece key "<file>#<index>"';
  return { packageId, piece };
}

const badRequest = (reason: string) => tagged(PIECE_BAD_REQUEST, new TextEncoder().encode(reason));

export interface RequestPieceOptions {
  signal?: AbortSignal;
  /** the largest piece to accept (default PIECE_SIZE, the manifest's pieceSize) */
  maxPieceBytes?: number;
}

interface Requester {
  lp: LengthPrefixedStream<Stream>;
  /** the previous request on this stream: requests on one stream go one after the other */
  last: Promise<unknown>;
}

// One length-prefixed reader per stream: two readers on one stream would each see every byte.
const requesters = new WeakMap<Stream, Requester>();

/**
 * Asks for one piece on an outbound PIECES_PROTOCOL stream. Calls on the same stream queue
 * behind each other. Any failure (timeout, abort, broken answer) aborts the stream, whose
 * framing can no longer be trusted; the caller opens a new one.
 */
export async function requestPiece(stream: Stream, packageId: string, piece: PieceKey, options: RequestPieceOptions = {}): Promise<PieceAnswer> {
  let requester = requesters.get(stream);
  if (!requester) {
    const maxDataLength = 1 + (options.maxPieceBytes ?? PIECE_SIZE);
    // The byte buffer must hold a whole answer (its default is 4 MiB).
    requester = { lp: lpStream(stream, { maxDataLength, maxBufferSize: Math.max(4 << 20, 2 * maxDataLength) }), last: Promise.resolve() };
    requesters.set(stream, requester);
  }
  const { lp } = requester;
  const turn = requester.last.catch(() => undefined).then(async (): Promise<PieceAnswer> => {
    try {
      options.signal?.throwIfAborted();
      await lp.write(new TextEncoder().encode(JSON.stringify({ packageId, piece } satisfies PieceRequestMessage)), { signal: options.signal });
      return parsePieceAnswer((await lp.read({ signal: options.signal })).subarray());
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)));
      throw err;
    }
  });
  requester.last = turn;
  return turn;
}

/** A peer's answer to a piece request, or a PieceProtocolError. */
export function parsePieceAnswer(reply: Uint8Array): PieceAnswer {
  switch (reply[0]) {
    case PIECE_OK:
      return { status: 'ok', bytes: reply.subarray(1) };
    case PIECE_NOT_HELD:
      return { status: 'not-held' };
    case PIECE_BAD_REQUEST:
      return { status: 'bad-request', reason: new TextDecoder().decode(reply.subarray(1)) };
    default:
      throw new PieceProtocolError(reply.length === 0 ? 'empty answer to a piece request' : `unknown piece answer status ${reply[0]}`);
  }
}
