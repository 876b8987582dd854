/**
 * A libp2p stream the fuzz harness talks to the server on, watched: every byte sent raw (no
 * lpStream in the way, so broken framing goes out as written), every frame the server sends
 * back, and when the server closed its end or reset the stream. Case runners wait on it for
 * "an answer or a close" with a deadline: what issue 22 calls a stuck stream is one where that
 * wait runs out. Used by coordinator-run.ts and trust-run.ts.
 */
import type { Stream, StreamCloseEvent, StreamMessageEvent } from '@libp2p/interface';
import { createFrameReader, lengthPrefixed } from './lp-frames.ts';
import { withDeadline } from './deadline.ts';

/** Bytes handed to the muxer per send: a reveal of megabytes goes out in pieces, waiting for drain. */
const SEND_CHUNK = 64 << 10;

export interface WatchedStream {
  readonly stream: Stream;
  /** frames the server sent, in order */
  readonly frames: readonly Uint8Array[];
  /** raw bytes received (frames or not) */
  readonly bytesIn: number;
  /** the server closed its writable end (a graceful close, or the first half of one) */
  readonly remoteClosed: boolean;
  /** the stream is closed or reset, by either side */
  readonly closed: boolean;
  /** why the stream closed, when it closed with an error (a reset names itself here) */
  readonly closeError: string | undefined;
  /** the server's frames could not be read (a varint or frame length no server writes) */
  readonly unreadable: string | undefined;
  /** Sends bytes as they are; false when the stream no longer takes writes. */
  send(bytes: Uint8Array): Promise<boolean>;
  /** Sends one length-prefixed frame. */
  sendFrame(payload: Uint8Array): Promise<boolean>;
  /** Closes this side's writable end (the server's reads see the end of the stream). */
  closeWrite(): Promise<void>;
  /** True as soon as `check()` holds (checked on every event), false after `ms`. */
  until(check: () => boolean, ms: number): Promise<boolean>;
  /** Calls `listener` on every event (a message, a close); the peers observer reads broadcasts with it. */
  onEvent(listener: () => void): void;
  /** Resets the stream: the harness is done with it, whatever state it is in. */
  abort(): void;
}

/** How a stream ended, as a case's outcome reads it, or undefined while it is open and readable. */
export function streamEnd(s: WatchedStream): string | undefined {
  if (s.closed) return s.closeError ? 'reset' : 'closed';
  if (s.remoteClosed) return 'closed';
  if (s.unreadable) return 'unreadable';
  return undefined;
}

export function watchStream(stream: Stream): WatchedStream {
  const reader = createFrameReader();
  const waiters = new Set<() => void>();
  let bytesIn = 0;
  let remoteClosed = false;
  let closed = false;
  let closeError: string | undefined;
  const changed = () => waiters.forEach((w) => w());

  stream.addEventListener('message', (event: StreamMessageEvent) => {
    const data = event.data instanceof Uint8Array ? event.data : event.data.subarray();
    bytesIn += data.byteLength;
    reader.push(data);
    changed();
  });
  stream.addEventListener('remoteCloseWrite', () => {
    remoteClosed = true;
    changed();
  });
  stream.addEventListener('close', (event: StreamCloseEvent) => {
    closed = true;
    if (event.error) closeError = `${event.error.name}: ${event.error.message}`;
    changed();
  });

  const writable = () => !closed && stream.writeStatus === 'writable' && stream.status === 'open';
  async function send(bytes: Uint8Array): Promise<boolean> {
    for (let at = 0; at < bytes.byteLength; at += SEND_CHUNK) {
      if (!writable()) return false;
      try {
        if (!stream.send(bytes.subarray(at, at + SEND_CHUNK))) await withDeadline(stream.onDrain(), 10_000, 'the stream draining');
      } catch {
        return false;
      }
    }
    return writable();
  }

  return {
    stream,
    get frames() {
      return reader.frames;
    },
    get bytesIn() {
      return bytesIn;
    },
    get remoteClosed() {
      return remoteClosed;
    },
    get closed() {
      return closed;
    },
    get closeError() {
      return closeError;
    },
    get unreadable() {
      return reader.broken;
    },
    send,
    sendFrame: (payload) => send(lengthPrefixed(payload)),
    async closeWrite() {
      if (!writable()) return;
      await withDeadline(stream.close(), 5_000, 'closing the stream for writing').catch(() => undefined);
    },
    until(check, ms) {
      if (check()) return Promise.resolve(true);
      return new Promise<boolean>((done) => {
        const test = () => {
          if (!check()) return;
          finish(true);
        };
        const finish = (ok: boolean) => {
          waiters.delete(test);
          clearTimeout(timer);
          done(ok);
        };
        const timer = setTimeout(() => finish(false), ms);
        waiters.add(test);
      });
    },
    onEvent(listener) {
      waiters.add(listener);
    },
    abort() {
      if (closed) return;
      try {
        stream.abort(new Error('the fuzz case is over'));
      } catch {
        // Already gone.
      }
    },
  };
}
