/**
 * Link measurement between peers on the PROBE protocol, over the direct WebRTC connection
 * tensors would use: an echo of a few bytes for round-trip time (median of several), then one
 * larger echo for throughput. Donors probe the peers the coordinator introduces and report the
 * figures, which routes are chosen by.
 */
import type { Libp2p } from 'libp2p';
import type { Stream } from '@libp2p/interface';
import { lpStream } from '@libp2p/utils';
import { openDirectStream } from './node.ts';
import { PROBE_PROTOCOL } from './protocol-ids.ts';
import type { PeerAddress } from './protocol.ts';

/** Larger probes are refused: a probe measures a link, it must not load it. */
export const MAX_PROBE_BYTES = 1 << 20;
const RTT_SAMPLES = 5;
const THROUGHPUT_BYTES = 256 << 10;

export async function serveProbe(node: Libp2p): Promise<void> {
  await node.handle(PROBE_PROTOCOL, async (stream) => {
    const lp = lpStream(stream, { maxDataLength: MAX_PROBE_BYTES });
    try {
      for (;;) await lp.write((await lp.read()).subarray());
    } catch {
      // the prober closed the stream, or sent more than a probe may
    }
    await stream.close().catch(() => undefined);
  });
}

export interface LinkMeasurement {
  rttMs: number;
  /** megabytes per second of a 256 KiB echo (both directions counted) */
  throughputMBps: number;
}

export async function probePeer(node: Libp2p, peer: PeerAddress, now: () => number = () => performance.now()): Promise<LinkMeasurement> {
  const { stream } = await openDirectStream(node, peer, PROBE_PROTOCOL);
  const lp = lpStream(stream, { maxDataLength: MAX_PROBE_BYTES });
  try {
    const rtts: number[] = [];
    const small = new Uint8Array(8);
    for (let i = 0; i < RTT_SAMPLES; i++) {
      const t0 = now();
      await lp.write(small);
      await lp.read();
      rtts.push(now() - t0);
    }
    const big = new Uint8Array(THROUGHPUT_BYTES);
    const t0 = now();
    await lp.write(big);
    await lp.read();
    const seconds = Math.max(1e-6, (now() - t0) / 1000);
    rtts.sort((a, b) => a - b);
    return { rttMs: rtts[Math.floor(rtts.length / 2)], throughputMBps: (2 * THROUGHPUT_BYTES) / 1e6 / seconds };
  } finally {
    await stream.close().catch(() => undefined);
  }
}

/**
 * Whether a peer still answers, over a direct connection, within `timeoutMs`: one small echo.
 * A closed or killed tab, a cut link and a frozen page (its JavaScript never runs the echo) do
 * not; a stage that is only slow at computing does. How the client tells which stage of a
 * stalled route to swap out (route-recovery.ts).
 */
export async function answers(node: Libp2p, peer: PeerAddress, timeoutMs: number): Promise<boolean> {
  const signal = AbortSignal.timeout(timeoutMs);
  let stream: Stream | undefined;
  const echo = (async () => {
    stream = (await openDirectStream(node, peer, PROBE_PROTOCOL, signal)).stream;
    const lp = lpStream(stream, { maxDataLength: MAX_PROBE_BYTES });
    await lp.write(new Uint8Array(8));
    await lp.read();
    return true;
  })();
  const timedOut = new Promise<boolean>((resolve) => signal.addEventListener('abort', () => resolve(false), { once: true }));
  const answered = await Promise.race([echo.catch(() => false), timedOut]);
  if (answered) await stream?.close().catch(() => undefined);
  else stream?.abort(new Error(`no echo within ${timeoutMs} ms`));
  return answered;
}
