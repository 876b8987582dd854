/**
 * Length-prefixed streams with every bound set, for streams whose other end may be anyone.
 * lpStream's own bounds leave three gaps: its length decoder keeps reading a varint that never
 * ends (0x80 bytes forever, each one kept), its read buffer is 4 MiB whatever maxDataLength
 * says (a larger message resets the stream instead of being read), and a message that starts
 * and never finishes holds its reader forever. Every stream the server reads from peers goes
 * through here (coordinator, validator).
 */
import { lpStream } from '@libp2p/utils';
import type { LengthPrefixedStream } from '@libp2p/utils';
import type { Stream } from '@libp2p/interface';
import { InfermeshError } from '../errors.ts';

/** A length prefix longer than the varint of the largest message allowed. */
export class FrameLengthError extends InfermeshError {
  override name = 'FrameLengthError';
}

/** A message that began to arrive and did not finish in time. */
export class FrameTimeoutError extends InfermeshError {
  override name = 'FrameTimeoutError';
}

/**
 * Read errors after which the stream's framing is lost: the sender is answered once, by name,
 * and the stream ends (lpStream's own names, and ours).
 */
export const FRAMING_ERRORS: ReadonlySet<string> = new Set(['InvalidDataLengthError', 'InvalidMessageLengthError', 'InvalidDataLengthLengthError', 'FrameLengthError', 'FrameTimeoutError']);

/**
 * One read of a length-prefixed stream, told apart the way every reader of the grid needs it: a
 * message; the end (the peer closed or reset its end, inside a message or not); or a framing
 * error, after which the stream cannot be read on and the sender is refused by name.
 */
export type NextMessage = { kind: 'message'; bytes: Uint8Array } | { kind: 'end' } | { kind: 'unframed'; error: Error };

export async function nextMessage(lp: Pick<LengthPrefixedStream<Stream>, 'read'>): Promise<NextMessage> {
  try {
    return { kind: 'message', bytes: (await lp.read()).subarray() };
  } catch (err) {
    return FRAMING_ERRORS.has((err as Error)?.name) ? { kind: 'unframed', error: err as Error } : { kind: 'end' };
  }
}

/** A control message crosses any link in well under this once its first byte is in. */
export const MESSAGE_TIMEOUT_MS = 5_000;

export interface BoundedLpStreamOptions {
  /** Once a message's first byte arrives, all of it must within this; default MESSAGE_TIMEOUT_MS. */
  messageTimeoutMs?: number;
}

/** Bytes of the varint that encodes `n`. */
export function varintLength(n: number): number {
  let bytes = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    bytes++;
  }
  return bytes;
}

export function boundedLpStream(stream: Stream, maxDataLength: number, options: BoundedLpStreamOptions = {}): LengthPrefixedStream<Stream> {
  const maxLengthLength = varintLength(maxDataLength);
  const messageTimeoutMs = options.messageTimeoutMs ?? MESSAGE_TIMEOUT_MS;
  /** Starts the clock of the read in progress; the length decoder calls it when a message's first byte is in. */
  let started: (() => void) | undefined;
  const lp = lpStream(stream, {
    maxDataLength,
    maxLengthLength,
    // One whole message and a little of the next: the sender may write ahead of our reads.
    maxBufferSize: maxDataLength + maxLengthLength + (64 << 10),
    lengthDecoder(prefix: { byteLength: number; get(index: number): number }): number {
      started?.();
      started = undefined;
      let value = 0;
      for (let i = 0; i < prefix.byteLength; i++) {
        if (i >= maxLengthLength) throw new FrameLengthError(`a length prefix of more than ${maxLengthLength} bytes: no message here is over ${maxDataLength} bytes`);
        const byte = prefix.get(i);
        value += (byte & 0x7f) * 2 ** (7 * i);
        if (byte < 0x80) return value;
      }
      // lpStream reads another byte on a RangeError: the varint goes on.
      throw new RangeError('the length prefix goes on');
    },
  });

  return {
    ...lp,
    // Waiting for a message takes as long as the peer likes; receiving one, messageTimeoutMs.
    async read(readOptions) {
      const clock = new AbortController();
      let timer: ReturnType<typeof setTimeout> | undefined;
      started = () => {
        timer = setTimeout(() => clock.abort(new FrameTimeoutError(`a message began and did not finish within ${messageTimeoutMs} ms`)), messageTimeoutMs);
      };
      try {
        return await lp.read({ ...readOptions, signal: readOptions?.signal ? AbortSignal.any([readOptions.signal, clock.signal]) : clock.signal });
      } finally {
        clearTimeout(timer);
        started = undefined;
      }
    },
  };
}
