/**
 * What an idle link between two grid peers costs: nothing on a timer. libp2p's connection
 * monitor pings every connection every 10 s by default, each ping a new stream (a new data
 * channel on WebRTC); on an idle 4-tab grid that chatter was about a quarter of the machine's
 * idle CPU. Peers (shared/grid/node.ts) ping only once a minute, as a backstop.
 * A relay and two Node peers over real WebRTC.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Connection } from '@libp2p/interface';
import { createPeerNode, dialDirect, isDirectWebRTC, peerAddress } from '../shared/grid/node.ts';
import type { PeerNode } from '../shared/grid/node.ts';
import { startRelay } from '../signaling-server/relay.ts';
import type { RelayNode } from '../signaling-server/relay.ts';

/** Longer than libp2p's default ping interval (10 s), so a default monitor would have pinged. */
const WATCH_MS = 12_000;

let relay: RelayNode;
let peers: PeerNode[] = [];

beforeAll(async () => {
  relay = await startRelay({ host: '127.0.0.1', port: 0 });
  const relayAddrs = relay.getMultiaddrs().map(String);
  peers = await Promise.all([createPeerNode({ relayAddrs }), createPeerNode({ relayAddrs })]);
});

afterAll(async () => {
  await Promise.allSettled(peers.map((n) => n.stop()));
  await relay?.stop();
});

/** Records the protocol of every stream opened on `conn` from now on. */
function watchStreams(conn: Connection): string[] {
  const opened: string[] = [];
  const newStream = conn.newStream.bind(conn);
  conn.newStream = ((protocols: string | string[], options?: unknown) => {
    opened.push(...[protocols].flat());
    return newStream(protocols, options as never);
  }) as Connection['newStream'];
  return opened;
}

describe('an idle direct link between two peers', () => {
  it(`carries no ping for ${WATCH_MS / 1000} s (the monitor pings once a minute)`, { timeout: 60_000 }, async () => {
    const [a, b] = peers;
    const conn = await dialDirect(a, peerAddress(b));
    expect(isDirectWebRTC(conn)).toBe(true);
    const fromB = b.getConnections(a.peerId).find(isDirectWebRTC);
    expect(fromB).toBeDefined();
    const opened = watchStreams(conn);
    const openedByB = watchStreams(fromB!);
    await new Promise((r) => setTimeout(r, WATCH_MS));
    expect(opened.filter((p) => p.includes('/ping/'))).toEqual([]);
    expect(openedByB.filter((p) => p.includes('/ping/'))).toEqual([]);
    // still open: nothing was cut for want of a ping
    expect(conn.status).toBe('open');
  });
});
