/**
 * How a side that refused something ends a stream: its last message goes out, its writable end
 * closes (the other side reads the refusal, then EOF), and a peer that keeps its own end open
 * past a grace period is reset, so a refused stream never lingers. Used by the server's
 * coordinator and validator, whose peers may be anyone.
 */
import type { Stream } from '@libp2p/interface';
import { InfermeshError } from '../errors.ts';

/** The peer did not close its end in time after a refusal. */
export class StreamLingerError extends InfermeshError {
  override name = 'StreamLingerError';
}

/** Long enough for a last message to cross a slow link; short against a peer that stalls on purpose. */
export const CLOSE_GRACE_MS = 2_000;

/**
 * Sends `last` (if any; a failure to send it is the peer's problem), closes our end, and resets
 * the stream unless the peer closed its end within `graceMs`.
 */
export async function endStream(stream: Stream, last?: () => Promise<void>, graceMs = CLOSE_GRACE_MS): Promise<void> {
  const grace = AbortSignal.timeout(graceMs);
  try {
    await last?.();
    await stream.close({ signal: grace });
  } catch {
    // Sent what could be sent; the reset below ends it either way.
  }
  if (stream.status === 'closed' || stream.status === 'reset' || stream.status === 'aborted') return;
  if (stream.remoteWriteStatus !== 'writable') return;
  await new Promise<void>((done) => {
    const left = () => {
      clearTimeout(timer);
      done();
    };
    const timer = setTimeout(() => {
      stream.removeEventListener('close', left);
      stream.abort(new StreamLingerError(`the peer kept the stream open ${graceMs} ms after it was refused`));
      done();
    }, Math.max(0, graceMs));
    stream.addEventListener('close', left, { once: true });
  });
}
