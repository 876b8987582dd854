/**
 * The coordinator protocol over real libp2p (a Node peer talking to the relay): a donor is
 * welcomed, told who holds what and assigned layers; bad messages and a donor announcing layers
 * it does not hold are refused with an ERROR naming the problem, and the peer stays registered.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lpStream } from '@libp2p/utils';
import type { LengthPrefixedStream } from '@libp2p/utils';
import type { Stream } from '@libp2p/interface';
import { multiaddr } from '@multiformats/multiaddr';
import { openCheckpoint } from '../cli/open-checkpoint.ts';
import { compileTo, removeTempDirs, STORIES_260K, TOK_512 } from '../cli/test-support.ts';
import { startRelay } from '../signaling-server/relay.ts';
import type { RelayNode } from '../signaling-server/relay.ts';
import { startCoordinator } from '../signaling-server/coordinator/coordinator.ts';
import type { Coordinator } from '../signaling-server/coordinator/coordinator.ts';
import { createPeerNode, webrtcAddrs } from '../shared/grid/node.ts';
import type { PeerNode } from '../shared/grid/node.ts';
import { COORDINATOR_PROTOCOL } from '../shared/grid/protocol.ts';
import type { FromCoordinator, ToCoordinator } from '../shared/grid/protocol.ts';
import { piecesForLayers } from '../shared/swarm/package-pieces.ts';
import type { Manifest } from '../shared/model/manifest.ts';

let relay: RelayNode;
let coordinator: Coordinator;
let donor: PeerNode;
let manifest: Manifest;
let lp: LengthPrefixedStream<Stream>;

const send = (message: ToCoordinator | string) => lp.write(new TextEncoder().encode(typeof message === 'string' ? message : JSON.stringify(message)));
const next = async () => JSON.parse(new TextDecoder().decode((await lp.read()).subarray())) as FromCoordinator;
async function nextOf<T extends FromCoordinator['type']>(type: T): Promise<Extract<FromCoordinator, { type: T }>> {
  for (;;) {
    const m = await next();
    if (m.type === type) return m as Extract<FromCoordinator, { type: T }>;
  }
}

beforeAll(async () => {
  ({ manifest } = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'q4'));
  relay = await startRelay({ host: '127.0.0.1', port: 0 });
  coordinator = await startCoordinator({ manifest, packageUrl: '/packages/x/', maxLayersPerNode: 2 }, { node: relay });
  donor = await createPeerNode({ relayAddrs: relay.getMultiaddrs().map(String) });
  lp = lpStream(await donor.dialProtocol(multiaddr(relay.getMultiaddrs()[0]), COORDINATOR_PROTOCOL));
});

afterAll(async () => {
  await donor?.stop();
  await coordinator?.stop();
  await relay?.stop();
  await removeTempDirs();
});

const device = { executionProvider: 'wasm' as const, msPerLayer: 1, memoryBytes: 1 << 30, signature: 'test', label: 'test' };

describe('the coordinator protocol', () => {
  it('refuses messages before hello, malformed JSON and unknown types, by name', async () => {
    await send({ type: 'have', packageId: manifest.id, pieces: [] });
    expect(await nextOf('error')).toMatchObject({ name: 'UsageError', message: "say hello before 'have'" });
    await send('{not json');
    expect(await nextOf('error')).toMatchObject({ name: 'UsageError', message: expect.stringContaining('not JSON') });
    await send({ type: 'hello', role: 'donor', addrs: [] });
    expect(await nextOf('error')).toMatchObject({ message: 'a donor hello needs its device summary' });
    await send({ type: 'hello', role: 'donor', addrs: [], device, payTo: 'my wallet' });
    expect(await nextOf('error')).toMatchObject({ name: 'UsageError', message: 'hello.payTo must be an EVM address (0x and 40 hex digits), got "my wallet"' });
  });

  it('welcomes a donor, sends the peers it knows, then assigns at most 2 layers', async () => {
    await send({ type: 'hello', role: 'donor', addrs: webrtcAddrs(donor), device });
    const welcome = await nextOf('welcome');
    expect(welcome.peerId).toBe(donor.peerId.toString());
    expect(welcome.model.packageId).toBe(manifest.id);
    expect((await next()).type).toBe('peers');
    const assign = await nextOf('assign');
    expect(assign.layers).toEqual({ start: 0, end: 2 });
  });

  it('refuses a donor announcing layers it was not assigned or does not hold, and keeps it registered', async () => {
    await send({ type: 'serving', packageId: manifest.id, layers: { start: 2, end: 4 } });
    expect(await nextOf('error')).toMatchObject({ name: 'LayersNotHeldError', message: 'announced layers 2..3 but was assigned 0..1' });
    await send({ type: 'serving', packageId: manifest.id, layers: { start: 0, end: 2 } });
    expect(await nextOf('error')).toMatchObject({ name: 'LayersNotHeldError', message: expect.stringMatching(/^announced layers 0..1 but holds 0 of their 4 pieces/) });
    expect(coordinator.registry.peers.get(donor.peerId.toString())?.serving).toBeUndefined();
    // Once it announces the pieces, the same claim is accepted.
    await send({ type: 'have', packageId: manifest.id, pieces: piecesForLayers(manifest, { start: 0, end: 2 }) });
    await send({ type: 'serving', packageId: manifest.id, layers: { start: 0, end: 2 } });
    await coordinator.waitFor((r) => r.peers.get(donor.peerId.toString())?.serving?.end === 2, 'the donor serving 0..1', 5_000);
    expect(coordinator.registry.coverage()).toEqual([1, 1, 0, 0, 0]);
  });

  it('routes by the ms per layer a donor measures while serving, not only by its handshake', async () => {
    expect(coordinator.registry.peers.get(donor.peerId.toString())?.device?.msPerLayer).toBe(1);
    await send({ type: 'stats', stats: { requestsServed: 3, tokensServed: 90, tokensPerSecond: 12, msPerLayer: 0.25 } });
    await expect.poll(() => coordinator.registry.peers.get(donor.peerId.toString())?.device?.msPerLayer).toBe(0.25);
    expect(coordinator.registry.peers.get(donor.peerId.toString())?.stats?.tokensServed).toBe(90);
  });
});
