/**
 * The libp2p node every grid peer runs (donor tabs, SDK clients in browsers and in Node): it
 * reaches the server's relay over WebSockets, listens for WebRTC through it (the relay carries
 * only the SDP handshake), and opens direct WebRTC connections to other peers for tensors and
 * pieces. On Node, @libp2p/webrtc speaks WebRTC through node-datachannel.
 */
import { createLibp2p } from 'libp2p';
import type { ConnectionMonitorInit, Libp2p } from 'libp2p';
import { webSockets } from '@libp2p/websockets';
import { webRTC } from '@libp2p/webrtc';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { identify } from '@libp2p/identify';
import { ping } from '@libp2p/ping';
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2';
import { multiaddr } from '@multiformats/multiaddr';
import type { Connection, PrivateKey, Stream } from '@libp2p/interface';
import { InfermeshError } from '../errors.ts';
import type { PeerAddress } from './protocol.ts';
import { closeOnFarEndClose } from './far-end-close.ts';

/** A peer could not be reached over a direct (non-relayed) WebRTC connection. */
export class DirectConnectionError extends InfermeshError {
  override name = 'DirectConnectionError';
}

export type PeerNode = Libp2p<{ identify: ReturnType<ReturnType<typeof identify>>; ping: ReturnType<ReturnType<typeof ping>> }>;

export interface PeerNodeOptions {
  /** the relay's multiaddrs (from the server's /api/info) */
  relayAddrs: string[];
  /** the node's identity; a stage passes its own so it can sign commitments with it (default: a new Ed25519 key) */
  privateKey?: PrivateKey;
  /** the STUN/TURN servers each WebRTC dial and answer uses (ice.ts); default the WebRTC library's */
  rtcConfiguration?: () => Promise<RTCConfiguration>;
}

const PEER_CONNECTION_MONITOR: ConnectionMonitorInit = {
  pingInterval: 60_000,
  pingTimeout: { minTimeout: 30_000, maxTimeout: 30_000 },
};

export async function createPeerNode(options: PeerNodeOptions): Promise<PeerNode> {
  const node = await createLibp2p({
    privateKey: options.privateKey,
    addresses: { listen: ['/p2p-circuit', '/webrtc'] },
    transports: [webSockets(), webRTC(options.rtcConfiguration ? { rtcConfiguration: options.rtcConfiguration } : {}), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify(), ping: ping() },
    // A WebRTC dial is an SDP exchange through the relay plus ICE; on a loaded machine (several
    // tabs computing) it can take longer than libp2p's 6 s per address.
    connectionManager: { dialTimeout: 30_000, addressDialTimeout: 20_000 },
    // Peers on one machine or LAN dial each other at private addresses; the default gater refuses those.
    connectionGater: { denyDialMultiaddr: () => false },
    // libp2p's monitor pings every connection every 10 s, each ping a new stream (a new data
    // channel on WebRTC, a stream inside a stream on a relayed connection): on an idle 4-tab grid
    // that chatter was a quarter of the machine's idle CPU (tabs, the relay and the network
    // service; measured per process). Dead links are found sooner by other means (a closed
    // transport, ICE consent, the client's echoes, the relay's own monitor), so between peers
    // the ping is only a backstop, once a minute.
    connectionMonitor: PEER_CONNECTION_MONITOR,
  });
  closeOnFarEndClose(node);
  await node.dial(options.relayAddrs.map((a) => multiaddr(a)));
  await relayReservation(node);
  return node;
}

/**
 * Resolves once the relay has given this node a /webrtc address: a reservation, which each new
 * connection to the relay makes afresh (libp2p's circuit transport asks again on its own).
 */
export function relayReservation(node: Libp2p, timeoutMs = 10_000): Promise<void> {
  return waitFor(() => webrtcAddrs(node).length > 0, timeoutMs, 'the relay did not give this node a /webrtc address');
}

/** This node's addresses others can dial over WebRTC (through the relay's signaling). */
export function webrtcAddrs(node: Libp2p): string[] {
  return node.getMultiaddrs().map(String).filter((a) => a.includes('/p2p-circuit/webrtc/'));
}

export function peerAddress(node: Libp2p): PeerAddress {
  return { peerId: node.peerId.toString(), addrs: webrtcAddrs(node) };
}

/** True for a connection tensors may use: WebRTC, peer to peer, no relay limits. */
export function isDirectWebRTC(conn: Connection): boolean {
  return conn.limits == null && conn.remoteAddr.toString().includes('/webrtc') && conn.status === 'open';
}

/** Dials in progress per node and peer: concurrent callers share one dial instead of racing. */
const dialing = new WeakMap<Libp2p, Map<string, Promise<Connection>>>();
/** Two peers often dial each other at once (one for pieces, the other to probe); the loser retries after this. */
const REDIAL_DELAY_MS = 250;

/**
 * A direct WebRTC connection to a peer: an open one is reused (so routes keep working when
 * the relay is gone), otherwise one is dialed through the relay's signaling. Never returns a
 * relayed connection: tensors and pieces do not fit the relay's limits, and must not cross it.
 * Concurrent callers share one dial, which no caller's `signal` aborts: a caller that gives up
 * (an echo allowed 300 ms) stops waiting, and the dial goes on for the others (a route opening)
 * within libp2p's own dial timeout.
 */
export async function dialDirect(node: Libp2p, peer: PeerAddress, signal?: AbortSignal): Promise<Connection> {
  signal?.throwIfAborted();
  const open = existingDirect(node, peer.peerId);
  if (open) return open;
  let pending = dialing.get(node);
  if (!pending) dialing.set(node, (pending = new Map()));
  let attempt = pending.get(peer.peerId);
  if (!attempt) {
    const shared = (async (): Promise<Connection> => {
      try {
        return await dialOnce(node, peer);
      } catch (err) {
        // The peer may have dialed us meanwhile (simultaneous dials can fail on both sides): use
        // its connection, or try once more.
        await new Promise((r) => setTimeout(r, REDIAL_DELAY_MS));
        const theirs = existingDirect(node, peer.peerId);
        if (theirs) return theirs;
        return dialOnce(node, peer).catch(() => Promise.reject(err));
      } finally {
        pending.delete(peer.peerId);
      }
    })();
    pending.set(peer.peerId, shared);
    attempt = shared;
  }
  return signal ? untilAborted(attempt, signal) : attempt;
}

/** `p`, or the signal's reason once it aborts first (`p` itself goes on). */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** How long a new stream may take to open on a connection that looks open before it counts as dead. */
const STREAM_OPEN_TIMEOUT_MS = 5_000;

/**
 * A stream on a direct WebRTC connection to a peer. When two peers dial each other at once one
 * side can be left holding a connection whose other end is gone, on which new streams never
 * open: such a connection is closed and the peer dialed afresh, once.
 */
export async function openDirectStream(node: Libp2p, peer: PeerAddress, protocol: string, signal?: AbortSignal): Promise<{ stream: Stream; connection: Connection }> {
  const attempt = async () => {
    const connection = await dialDirect(node, peer, signal);
    const timeout = AbortSignal.timeout(STREAM_OPEN_TIMEOUT_MS);
    try {
      return { stream: await connection.newStream(protocol, { signal: signal ? AbortSignal.any([signal, timeout]) : timeout }), connection };
    } catch (err) {
      if (signal?.aborted || !timeout.aborted) throw err;
      await connection.close().catch(() => connection.abort(err as Error));
      throw err;
    }
  };
  try {
    return await attempt();
  } catch (err) {
    signal?.throwIfAborted();
    if (existingDirect(node, peer.peerId) === undefined && (err as Error)?.name !== 'DirectConnectionError') return attempt();
    throw err;
  }
}

function existingDirect(node: Libp2p, peerId: string): Connection | undefined {
  return preferredDirect(node, node.getConnections().filter((c) => c.remotePeer.toString() === peerId && isDirectWebRTC(c)));
}

/**
 * Of several open direct connections to one peer (two peers that dialed each other at once
 * each keep the one they dialed and the one they answered), the one both ends keep: the one
 * dialed by the peer whose id sorts first, and of those the oldest. Both ends choose the same one
 * without a word, so new streams go to it and the other falls idle and is closed (idle-links.ts).
 */
export function preferredDirect(node: Libp2p, connections: Connection[]): Connection | undefined {
  const self = node.peerId.toString();
  const dialer = (c: Connection) => (c.direction === 'outbound' ? self : c.remotePeer.toString());
  return connections.reduce<Connection | undefined>((best, c) => {
    if (!best) return c;
    const [a, b] = [dialer(c), dialer(best)];
    if (a !== b) return a < b ? c : best;
    return c.timeline.open < best.timeline.open ? c : best;
  }, undefined);
}

/**
 * How long a WebRTC dial may go without a step forward (relay stream, SDP offer and answer, ICE
 * candidates, data channel) before it is given up. Under load its steps came at most about a
 * second apart, the whole dial in 2 to 3 s; but a dial whose ICE never connected sat silent after
 * its candidates until libp2p's 20 s address timeout, and every route through that hop with it.
 */
const DIAL_STALL_MS = 4_000;

async function dialOnce(node: Libp2p, peer: PeerAddress): Promise<Connection> {
  const addrs = peer.addrs.filter((a) => a.includes('/webrtc'));
  if (addrs.length === 0) throw new DirectConnectionError(`peer ${peer.peerId} has no /webrtc address to dial`);
  let lastError: unknown;
  // The dial's last progress event says where a failed WebRTC handshake stalled (relay, SDP, ICE, data channel).
  let stage = 'start';
  for (const addr of addrs) {
    const stalled = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const watch = () => {
      clearTimeout(timer);
      timer = setTimeout(() => stalled.abort(new DirectConnectionError(`the dial to ${peer.peerId} made no progress for ${DIAL_STALL_MS} ms after ${stage}`)), DIAL_STALL_MS);
    };
    const onProgress = (event: { type: string }) => {
      stage = event.type;
      watch();
    };
    watch();
    try {
      const conn = await node.dial(multiaddr(addr), { onProgress, signal: stalled.signal });
      if (isDirectWebRTC(conn)) return conn;
      lastError = new Error(`dial returned a ${conn.limits ? 'relayed' : 'non-WebRTC'} connection (${conn.remoteAddr})`);
    } catch (err) {
      lastError = stalled.signal.aborted ? stalled.signal.reason : err;
    } finally {
      clearTimeout(timer);
    }
  }
  throw new DirectConnectionError(`cannot open a direct WebRTC connection to ${peer.peerId} (last step: ${stage}): ${(lastError as Error)?.message}`, { cause: lastError });
}

async function waitFor(check: () => boolean, timeoutMs: number, message: string): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new DirectConnectionError(message);
    await new Promise((r) => setTimeout(r, 50));
  }
}
