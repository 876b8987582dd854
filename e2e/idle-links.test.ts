/**
 * What an idle link between two grid peers costs: nothing on a timer. libp2p's connection
 * monitor pings every connection every 10 s by default, each ping a new stream (a new data
 * channel on WebRTC); on an idle 4-tab grid that chatter was about a quarter of the machine's
 * idle CPU. Peers (shared/grid/node.ts) ping only once a minute, as a backstop. And the links a
 * peer keeps for nothing are closed once idle (shared/grid/idle-links.ts).
 * A relay and Node peers over real WebRTC.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Connection } from '@libp2p/interface';
import { multiaddr } from '@multiformats/multiaddr';
import { createPeerNode, dialDirect, isDirectWebRTC, peerAddress, preferredDirect } from '../shared/grid/node.ts';
import { createIdleLinks } from '../shared/grid/idle-links.ts';
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
  peers = await Promise.all(Array.from({ length: 4 }, () => createPeerNode({ relayAddrs })));
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

describe('a peer’s idle links', () => {
  const HOLD = '/infermesh/test/hold/1';

  it('are closed once idle for the set time: relayed ones always, direct ones to peers not needed; a link carrying a stream is kept', { timeout: 60_000 }, async () => {
    const [a, neighbour, stranger, busy] = peers;
    const held: { close(): Promise<void> }[] = [];
    await busy.handle(HOLD, (stream) => void held.push(stream));
    for (const peer of [neighbour, stranger, busy]) expect(isDirectWebRTC(await dialDirect(a, peerAddress(peer)))).toBe(true);
    const stream = await (await dialDirect(a, peerAddress(busy))).newStream(HOLD);
    const direct = (peer: PeerNode) => a.getConnections(peer.peerId).filter(isDirectWebRTC);
    // Every WebRTC dial left the relayed connection that carried its handshake.
    expect(a.getConnections().filter((c) => c.limits != null).length).toBeGreaterThan(0);

    let clock = 0;
    const idleMs = 10_000;
    const links = createIdleLinks({ idleMs }, { node: a, needed: (id) => id === neighbour.peerId.toString(), now: () => clock });
    expect(links.sweep()).toBe(0); // seen idle now
    clock = idleMs - 1;
    expect(links.sweep()).toBe(0);
    clock = idleMs;
    expect(links.sweep()).toBeGreaterThan(0);
    await waitFor(() => direct(stranger).length === 0 && a.getConnections().every((c) => c.limits == null));
    expect(direct(neighbour).map((c) => c.status)).toEqual(['open']);
    expect(direct(busy).map((c) => c.status)).toEqual(['open']);

    // The stream ends: the link is idle from the next look on, and closed a whole idleMs later.
    await Promise.all([stream.close(), ...held.map((s) => s.close())]);
    await waitFor(() => direct(busy)[0]?.streams.length === 0);
    clock += 1;
    links.sweep();
    clock += idleMs - 1;
    links.sweep();
    expect(direct(busy).map((c) => c.status)).toEqual(['open']);
    clock += 1;
    links.sweep();
    await waitFor(() => direct(busy).length === 0);
    expect(direct(neighbour).map((c) => c.status)).toEqual(['open']);

    // Whoever needs a closed link again dials it again.
    expect(isDirectWebRTC(await dialDirect(a, peerAddress(stranger)))).toBe(true);
  });

  it('that are never worth keeping go sooner: a relayed one, and the second of two direct links to one peer (both ends close the same one)', { timeout: 60_000 }, async () => {
    const [a, b] = peers;
    const first = await dialDirect(a, peerAddress(b));
    // b dials a as well, as two peers dialing each other at once do: two direct links
    const second = await b.dial(multiaddr(peerAddress(a).addrs[0]), { force: true });
    expect(isDirectWebRTC(second)).toBe(true);
    const direct = (from: PeerNode, to: PeerNode) => from.getConnections(to.peerId).filter(isDirectWebRTC);
    await waitFor(() => direct(a, b).length === 2 && direct(b, a).length === 2);
    // the two ends pick the same link: the one dialed by the peer whose id sorts first
    const dialer = a.peerId.toString() < b.peerId.toString() ? a : b;
    const keptByA = preferredDirect(a, direct(a, b))!;
    const keptByB = preferredDirect(b, direct(b, a))!;
    expect(keptByA.direction).toBe(dialer === a ? 'outbound' : 'inbound');
    expect(keptByB.direction).toBe(dialer === b ? 'outbound' : 'inbound');
    // `first` is a's own dial, `second` b's
    expect(keptByA.id === first.id).toBe(dialer === a);
    expect(keptByB.id === second.id).toBe(dialer === b);
    // a stream to b now goes over the kept link
    expect(await dialDirect(a, peerAddress(b))).toBe(keptByA);

    let clock = 0;
    const spareIdleMs = 1000;
    // b is needed, so its kept link stays however long it idles; the spare ones do not
    const links = createIdleLinks({ idleMs: 60_000, spareIdleMs }, { node: a, needed: () => true, now: () => clock });
    // identify's streams on the new links end first
    await waitFor(() => a.getConnections(b.peerId).every((c) => c.streams.length === 0));
    links.sweep();
    clock = spareIdleMs - 1;
    expect(links.sweep()).toBe(0);
    clock = spareIdleMs;
    expect(links.sweep()).toBeGreaterThan(0);
    await waitFor(() => direct(a, b).length === 1 && direct(b, a).length === 1 && a.getConnections().every((c) => c.limits == null));
    expect(direct(a, b)[0]).toBe(keptByA);
    expect(direct(b, a)[0]).toBe(keptByB);
    clock += 120_000;
    expect(links.sweep()).toBe(0);
    expect(keptByA.status).toBe('open');
  });
});

async function waitFor(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error('not within ' + timeoutMs + ' ms');
    await new Promise((r) => setTimeout(r, 50));
  }
}
