/**
 * The coordinator protocol over real libp2p (Node peers talking to the relay): a donor is
 * welcomed, told who holds what and assigned layers; a message that breaks the protocol is
 * refused with an ERROR naming it and its stream is closed, while a claim the registry cannot
 * grant yet (layers not held) is refused and the session goes on; one session per peer.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lpStream } from '@libp2p/utils';
import type { Stream } from '@libp2p/interface';
import { multiaddr } from '@multiformats/multiaddr';
import { openCheckpoint } from '../cli/open-checkpoint.ts';
import { compileTo, removeTempDirs, STORIES_260K, TOK_512 } from '../testkit/model-fixtures.ts';
import { startRelay } from '../signaling-server/relay.ts';
import type { RelayNode } from '../signaling-server/relay.ts';
import { startCoordinator } from '../signaling-server/coordinator/coordinator.ts';
import type { Coordinator } from '../signaling-server/coordinator/coordinator.ts';
import { createPeerNode, dialDirect, webrtcAddrs } from '../shared/grid/node.ts';
import { openCoordinatorSession } from '../shared/grid/coordinator-session.ts';
import type { CoordinatorSession } from '../shared/grid/coordinator-session.ts';
import type { LayerRange } from '../shared/runtime/stage.ts';
import type { PeerNode } from '../shared/grid/node.ts';
import { MAX_CONTROL_BYTES } from '../shared/grid/protocol.ts';
import { COORDINATOR_PROTOCOL } from '../shared/grid/protocol-ids.ts';
import type { FromCoordinator, ToCoordinator } from '../shared/grid/protocol.ts';
import { piecesForLayers } from '../shared/swarm/package-pieces.ts';
import type { Manifest } from '../shared/model/manifest.ts';

const HELLO_TIMEOUT_MS = 1_000;

let relay: RelayNode;
let coordinator: Coordinator;
let donor: PeerNode;
let other: PeerNode;
let manifest: Manifest;

/** One coordinator stream from `node`, read message by message. */
async function openSession(node: PeerNode = donor) {
  const stream: Stream = await node.dialProtocol(multiaddr(relay.getMultiaddrs()[0]), COORDINATOR_PROTOCOL);
  const lp = lpStream(stream, { maxDataLength: MAX_CONTROL_BYTES });
  const next = async () => JSON.parse(new TextDecoder().decode((await lp.read({ signal: AbortSignal.timeout(5_000) })).subarray())) as FromCoordinator;
  return {
    stream,
    send: (message: ToCoordinator | string | object) => lp.write(new TextEncoder().encode(typeof message === 'string' ? message : JSON.stringify(message))),
    sendRaw: (bytes: Uint8Array) => stream.send(bytes),
    next,
    async nextOf<T extends FromCoordinator['type']>(type: T): Promise<Extract<FromCoordinator, { type: T }>> {
      for (;;) {
        const m = await next();
        if (m.type === type) return m as Extract<FromCoordinator, { type: T }>;
      }
    },
    /**
     * Resolves once the server has ended the stream (EOF or reset), skipping what it sent before;
     * then closes this end, as a well-behaved peer does (the server counts a stream until both have).
     */
    async ended(): Promise<true> {
      for (;;) {
        try {
          await next();
        } catch (err) {
          if ((err as Error).name === 'TimeoutError') throw new Error('the server kept the stream open', { cause: err });
          await stream.close().catch(() => undefined);
          return true;
        }
      }
    },
  };
}

beforeAll(async () => {
  ({ manifest } = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'q4'));
  relay = await startRelay({ host: '127.0.0.1', port: 0 });
  coordinator = await startCoordinator({ manifest, packageUrl: '/packages/x/', maxLayersPerNode: 2, helloTimeoutMs: HELLO_TIMEOUT_MS }, { node: relay });
  [donor, other] = await Promise.all([0, 1].map(() => createPeerNode({ relayAddrs: relay.getMultiaddrs().map(String) })));
});

afterAll(async () => {
  await donor?.stop();
  await other?.stop();
  await coordinator?.stop();
  await relay?.stop();
  await removeTempDirs();
});

const device = { executionProvider: 'wasm' as const, msPerLayer: 1, memoryBytes: 1 << 30, signature: 'test', label: 'test' };
const peerOf = (node: PeerNode) => coordinator.registry.peers.get(node.peerId.toString());

describe('refusals that end the stream', () => {
  const cases: [string, ToCoordinator | string | object, string | RegExp][] = [
    ['a message before hello', { type: 'have', packageId: 'x', pieces: [] }, "say hello before 'have'"],
    ['text that is not JSON', '{not json', /^not JSON/],
    ['a message without a type', { role: 'donor' }, 'a coordinator message is a JSON object with a "type"'],
    ['an unknown type', { type: 'gossip' }, 'unknown coordinator message type "gossip"'],
    ['a donor hello without its device', { type: 'hello', role: 'donor', addrs: [] }, 'a donor hello needs its device summary'],
    ['a payTo that is not an address', { type: 'hello', role: 'donor', addrs: [], device, payTo: 'my wallet' }, 'hello: payTo: must be an EVM address (0x and 40 hex digits)'],
    ['a payTo that is an object', { type: 'hello', role: 'donor', addrs: [], device, payTo: {} }, /^hello: payTo: Invalid input: expected string/],
    ['a device with a string for a number', { type: 'hello', role: 'donor', addrs: [], device: { ...device, msPerLayer: '1' } }, /^hello: device\.msPerLayer: Invalid input: expected number/],
    ['an address that is not a multiaddr', { type: 'hello', role: 'client', addrs: ['http://evil'] }, /^hello: addrs\.0: "http:\/\/evil" is not a multiaddr/],
    ['a client hello naming layers', { type: 'hello', role: 'client', addrs: [], layers: { start: 0, end: 1 } }, 'hello: only a donor names the layers it serves'],
    ['a donor hello claiming layers past the model', { type: 'hello', role: 'donor', addrs: [], device, layers: { start: 4, end: 6 } }, 'hello: layers 4..5 are not a range this grid assigns (layers 0..4, at most 2 per donor)'],
    ['a donor hello claiming more layers than a donor may hold', { type: 'hello', role: 'donor', addrs: [], device, layers: { start: 0, end: 3 } }, 'hello: layers 0..2 are not a range this grid assigns (layers 0..4, at most 2 per donor)'],
    ['a donor hello claiming a range backwards', { type: 'hello', role: 'donor', addrs: [], device, layers: { start: 2, end: 1 } }, 'hello: layers: must be a range: start < end'],
  ];
  it.each(cases)('%s is refused by name, then the stream is closed', async (_what, message, text) => {
    const s = await openSession();
    await s.send(message);
    const error = await s.nextOf('error');
    expect(error.name).toBe('CoordinatorMessageError');
    expect(error.message).toMatch(text);
    expect(await s.ended()).toBe(true);
  });

  it("a hello whose addresses name another peer's id", async () => {
    const s = await openSession();
    await s.send({ type: 'hello', role: 'donor', addrs: webrtcAddrs(other), device });
    expect(await s.nextOf('error')).toMatchObject({ name: 'CoordinatorMessageError', message: expect.stringMatching(/^hello: addrs\.0 must end in this peer's own \/p2p\//) });
    expect(await s.ended()).toBe(true);
    expect(peerOf(donor)).toBeUndefined();
  });

  it('a length prefix over the 1 MiB limit, and one that never ends', async () => {
    for (const prefix of [[0x81, 0x80, 0x80, 0x01], Array(64).fill(0x80)]) {
      const s = await openSession();
      s.sendRaw(new Uint8Array(prefix));
      expect(await s.nextOf('error')).toMatchObject({ name: 'CoordinatorFrameError' });
      expect(await s.ended()).toBe(true);
    }
  });

  it('a stream that never says hello', async () => {
    const s = await openSession();
    const error = await s.nextOf('error');
    expect(error).toMatchObject({ name: 'HelloTimeoutError', message: `say hello within ${HELLO_TIMEOUT_MS} ms of opening the stream` });
    expect(await s.ended()).toBe(true);
  });
});

describe('a donor session', () => {
  let session: Awaited<ReturnType<typeof openSession>>;

  it('welcomes a donor, sends the peers it knows, then assigns at most 2 layers', async () => {
    session = await openSession();
    await session.send({ type: 'hello', role: 'donor', addrs: webrtcAddrs(donor), device });
    const welcome = await session.nextOf('welcome');
    expect(welcome.peerId).toBe(donor.peerId.toString());
    expect(welcome.model.packageId).toBe(manifest.id);
    expect((await session.next()).type).toBe('peers');
    const assign = await session.nextOf('assign');
    expect(assign.layers).toEqual({ start: 0, end: 2 });
  });

  it('refuses a donor announcing layers it was not assigned or does not hold, and keeps it registered', async () => {
    await session.send({ type: 'serving', packageId: manifest.id, layers: { start: 2, end: 4 } });
    expect(await session.nextOf('error')).toMatchObject({ name: 'LayersNotHeldError', message: 'announced layers 2..3 but was assigned 0..1' });
    await session.send({ type: 'serving', packageId: manifest.id, layers: { start: 0, end: 2 } });
    expect(await session.nextOf('error')).toMatchObject({ name: 'LayersNotHeldError', message: expect.stringMatching(/^announced layers 0..1 but holds 0 of their 4 pieces/) });
    expect(peerOf(donor)?.serving).toBeUndefined();
    // Once it announces the pieces, the same claim is accepted.
    await session.send({ type: 'have', packageId: manifest.id, pieces: piecesForLayers(manifest, { start: 0, end: 2 }) });
    await session.send({ type: 'serving', packageId: manifest.id, layers: { start: 0, end: 2 } });
    await coordinator.waitFor(() => peerOf(donor)?.serving?.end === 2, 'the donor serving 0..1', 5_000);
    expect(coordinator.registry.coverage()).toEqual([1, 1, 0, 0, 0]);
  });

  it('routes by the ms per layer a donor measures while serving, and keeps only the fields stats have', async () => {
    expect(peerOf(donor)?.device?.msPerLayer).toBe(1);
    await session.send({ type: 'stats', stats: { requestsServed: 3, tokensServed: 90, tokensPerSecond: 12, msPerLayer: 0.25, junk: 'x'.repeat(100) } });
    await expect.poll(() => peerOf(donor)?.device?.msPerLayer).toBe(0.25);
    expect(peerOf(donor)?.stats).toEqual({ requestsServed: 3, tokensServed: 90, tokensPerSecond: 12, msPerLayer: 0.25 });
  });

  it('keeps RTTs only to peers the coordinator knows', async () => {
    const peers = Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`made-up-${i}`, { rttMs: 1 }]));
    await session.send({ type: 'rtt', peers });
    await session.send({ type: 'stats', stats: { requestsServed: 4, tokensServed: 90, tokensPerSecond: 12 } });
    await expect.poll(() => peerOf(donor)?.stats?.requestsServed).toBe(4);
    expect(peerOf(donor)?.rtt.size).toBe(0);
  });

  it('a newer stream from the same peer replaces the older, which is told and closed; the peer stays', async () => {
    const newer = await openSession();
    expect(await session.nextOf('error')).toMatchObject({ name: 'SessionReplacedError' });
    expect(await session.ended()).toBe(true);
    expect(peerOf(donor)?.serving).toEqual({ start: 0, end: 2 });
    // Replies go to the newer stream.
    await newer.send({ type: 'serving', packageId: manifest.id, layers: { start: 2, end: 4 } });
    expect(await newer.nextOf('error')).toMatchObject({ name: 'LayersNotHeldError' });
    session = newer;
  });

  it('a malformed message ends the session, and the peer leaves the grid', async () => {
    await session.send({ type: 'serving', packageId: manifest.id, layers: null });
    expect(await session.nextOf('error')).toMatchObject({ name: 'CoordinatorMessageError', message: /^serving: layers: Invalid input: expected object, received null/ });
    expect(await session.ended()).toBe(true);
    await expect.poll(() => peerOf(donor)).toBeUndefined();
    expect(coordinator.registry.coverage()).toEqual([0, 0, 0, 0, 0]);
  });
});

describe('a donor whose session is lost joins again (shared/grid/coordinator-session.ts)', () => {
  /** A donor's session as web/donor/donor.ts runs it: it names the range it serves when it joins again, and announces it serves whatever it is assigned. */
  async function donorSession(node: PeerNode) {
    const seen = { hellos: [] as ToCoordinator[], assigns: [] as LayerRange[], connection: [] as { connected: boolean; rejoins: number; lost?: string }[], ended: [] as Error[] };
    let layers: LayerRange | undefined;
    const session: CoordinatorSession = await openCoordinatorSession({ node, relayAddr: multiaddr(relay.getMultiaddrs()[0]) }, {
      hello: () => {
        const hello: ToCoordinator = { type: 'hello', role: 'donor', addrs: webrtcAddrs(node), device, ...(layers && { layers }) };
        seen.hellos.push(hello);
        return hello;
      },
      joined: () => undefined,
      message: (m) => {
        if (m.type !== 'assign') return;
        seen.assigns.push((layers = m.layers));
        void session.send({ type: 'have', packageId: manifest.id, pieces: piecesForLayers(manifest, m.layers) });
        void session.send({ type: 'serving', packageId: manifest.id, layers: m.layers });
      },
      connection: (c) => seen.connection.push(c),
      ended: (err) => seen.ended.push(err),
    });
    return { session, seen };
  }
  const cut = (node: PeerNode) => relay.getConnections(node.peerId).forEach((c) => c.abort(new Error('cut by the test')));

  let rejoiner: PeerNode;
  beforeAll(async () => {
    rejoiner = await createPeerNode({ relayAddrs: relay.getMultiaddrs().map(String) });
  });
  afterAll(async () => rejoiner?.stop());

  it('keeps the range it serves, is reachable over WebRTC again, and stops joining once stopped', async () => {
    const { session, seen } = await donorSession(rejoiner);
    await coordinator.waitFor(() => peerOf(rejoiner)?.serving !== undefined, 'the donor serving', 5_000);
    const served = peerOf(rejoiner)!.serving!;

    cut(rejoiner);
    await expect.poll(() => seen.connection.at(-1), { timeout: 20_000 }).toEqual({ connected: true, rejoins: 1 });
    expect(seen.connection[1]).toMatchObject({ connected: false, rejoins: 0, lost: expect.stringMatching(/Error/) });
    expect(seen.hellos.at(-1)).toMatchObject({ layers: served });
    // Served again from its hello on, and not moved (no new download, no reload).
    await coordinator.waitFor(() => peerOf(rejoiner)?.serving?.start === served.start, 'the donor serving again', 5_000);
    expect(seen.assigns).toEqual([served]);
    // A new relay reservation: a peer that never met it dials it through the relay's signaling.
    const dialled = await dialDirect(other, { peerId: rejoiner.peerId.toString(), addrs: webrtcAddrs(rejoiner) });
    expect(dialled.status).toBe('open');
    expect(seen.ended).toEqual([]);

    session.stop();
    cut(rejoiner);
    await expect.poll(() => peerOf(rejoiner)).toBeUndefined();
    await new Promise((r) => setTimeout(r, 1_000));
    expect(peerOf(rejoiner)).toBeUndefined();
    expect(seen.connection.at(-1)).toEqual({ connected: true, rejoins: 1 });
  });

  it('a refusal ends the session for good, naming what the coordinator refused', async () => {
    const ended: Error[] = [];
    const session = await openCoordinatorSession({ node: rejoiner, relayAddr: multiaddr(relay.getMultiaddrs()[0]) }, {
      // Another peer's addresses: refused by name, and joining again would be refused again.
      hello: () => ({ type: 'hello', role: 'donor', addrs: webrtcAddrs(other), device }),
      joined: () => undefined,
      message: () => undefined,
      connection: () => undefined,
      ended: (err) => ended.push(err),
    });
    await expect.poll(() => ended.length, { timeout: 5_000 }).toBe(1);
    expect(ended[0]).toMatchObject({ name: 'CoordinatorRefusedError', message: expect.stringMatching(/^the coordinator ended this tab's session: CoordinatorMessageError: hello: addrs\.0 must end in this peer's own/) });
    await new Promise((r) => setTimeout(r, 1_000));
    expect(ended).toHaveLength(1);
    expect(peerOf(rejoiner)).toBeUndefined();
    session.stop();
  });
});
