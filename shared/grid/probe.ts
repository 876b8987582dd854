/**
 * Link measurement between peers on the PROBE protocol, over the direct WebRTC connection
 * tensors would use: an echo of a few bytes for round-trip time (median of several), then one
 * larger echo for throughput. Donors probe the peers the coordinator introduces and report the
 * figures, which routes are chosen by. Clients echo the stages of their route (createEchoes) to
 * tell which one went silent.
 */
import type { Libp2p } from 'libp2p';
import type { Stream } from '@libp2p/interface';
import { lpStream } from '@libp2p/utils';
import type { LengthPrefixedStream } from '@libp2p/utils';
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

/** Echoes to peers: whether each still answers within a time. */
export interface Echoes {
  /**
   * Whether a peer still answers, over a direct connection, within `timeoutMs`: one small echo.
   * A closed or killed tab, a cut link and a frozen page (its JavaScript never runs the echo) do
   * not; a stage that is only slow at computing does. How the client tells which stage of a
   * stalled route to swap out (route-recovery.ts).
   */
  answers(peer: PeerAddress, timeoutMs: number): Promise<boolean>;
  /** Opens the peer's echo stream ahead, if none is kept, so that its first echo is one round trip too. */
  warm(peer: PeerAddress): void;
  /** Closes the kept streams. */
  close(): void;
}

interface Kept {
  lp: Promise<LengthPrefixedStream<Stream>>;
  stream?: Stream;
  /** the echo in flight on this stream: echoes to one peer take turns */
  turn: Promise<unknown>;
  /** an echo was written and its reply not yet read */
  awaiting: boolean;
}

const ECHO = new Uint8Array(8);
/** Peers with a kept echo stream, at most: the one opened longest ago is dropped first (departed stages are never echoed again). */
const MAX_KEPT = 256;

/**
 * Echoes over one kept PROBE stream per peer, so that an echo is one round trip of 8 bytes: a
 * new stream costs a data channel handshake and a protocol negotiation first, three round trips
 * through a busy tab, which often took longer than the 300 ms an echo is allowed (and blamed a
 * live stage). A stream whose echo came late is dropped (a link that looks open and carries
 * nothing must not hold every later echo), and opened afresh by the next one. A stream still
 * opening is not: under load an opening took 0.5 to 1 s, longer than an echo is allowed, so one
 * dropped for that would be opened afresh by every echo, and every echo would fail.
 */
export function createEchoes(node: Libp2p): Echoes {
  const kept = new Map<string, Kept>();
  const drop = (peerId: string, k: Kept) => {
    if (kept.get(peerId) === k) kept.delete(peerId);
    k.stream?.abort(new Error('echo stream dropped'));
  };
  const open = (peer: PeerAddress): Kept => {
    const k: Kept = {
      turn: Promise.resolve(),
      awaiting: false,
      lp: openDirectStream(node, peer, PROBE_PROTOCOL).then(({ stream }) => {
        k.stream = stream;
        if (kept.get(peer.peerId) !== k) stream.abort(new Error('echo stream dropped'));
        return lpStream(stream, { maxDataLength: MAX_PROBE_BYTES });
      }),
    };
    k.lp.catch(() => drop(peer.peerId, k));
    kept.set(peer.peerId, k);
    if (kept.size > MAX_KEPT) {
      const [oldest, o] = kept.entries().next().value!;
      drop(oldest, o);
    }
    return k;
  };
  const echoOn = (k: Kept): Promise<true> => {
    const echo = k.turn.then(async () => {
      const lp = await k.lp;
      k.awaiting = true;
      await lp.write(ECHO);
      await lp.read();
      k.awaiting = false;
      return true as const;
    });
    k.turn = echo.catch(() => undefined);
    return echo;
  };
  return {
    async answers(peer, timeoutMs) {
      const found = kept.get(peer.peerId);
      const k = found ?? open(peer);
      // A kept stream that broke (the peer's connection dropped, and it may be back on another)
      // is opened afresh within the same time, not taken for the peer's silence.
      const echo = echoOn(k).catch((err: unknown) => {
        drop(peer.peerId, k);
        if (!found) throw err;
        return echoOn(open(peer));
      });
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
      const answered = await Promise.race([echo.catch(() => false as const), late]);
      clearTimeout(timer);
      const now = kept.get(peer.peerId) ?? k;
      if (!answered && now.awaiting) drop(peer.peerId, now);
      return answered;
    },
    warm(peer) {
      if (!kept.has(peer.peerId)) open(peer);
    },
    close() {
      for (const [peerId, k] of kept) drop(peerId, k);
    },
  };
}
