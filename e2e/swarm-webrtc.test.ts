/**
 * The weight swarm over the real network: a relay (signaling-server/relay.ts) and three Node
 * peers (shared/grid/node.ts). Two serve a compiled package's pieces on PIECES_PROTOCOL; the
 * third fetches a layer range over direct WebRTC connections (dialDirect), verifies every piece
 * and never touches the web seed. Then one server turns liar (corrupt: true) and is dropped.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { compileTo, removeTempDirs } from '../testkit/model-fixtures.ts';
import { createPeerNode, dialDirect, isDirectWebRTC, peerAddress } from '../shared/grid/node.ts';
import type { PeerNode } from '../shared/grid/node.ts';
import { PIECES_PROTOCOL } from '../shared/grid/protocol-ids.ts';
import type { Manifest } from '../shared/model/manifest.ts';
import { createSyntheticCheckpointFromConfig } from '../shared/model/synthetic/checkpoint.ts';
import { syntheticConfig } from '../shared/model/synthetic/presets.ts';
import { assembleFiles, locatePiece, piecesForLayers, piecesOfFiles } from '../shared/swarm/package-pieces.ts';
import type { PieceKey } from '../shared/swarm/piece-plan.ts';
import { servePieces } from '../shared/swarm/piece-protocol.ts';
import { corruptingStore } from '../testkit/swarm/corrupting-store.ts';
import { createMemoryPieceStore } from '../shared/swarm/piece-store.ts';
import type { PieceStore } from '../shared/swarm/piece-store.ts';
import { createSwarmFetcher } from '../shared/swarm/swarm-fetcher.ts';
import { startRelay } from '../signaling-server/relay.ts';
import type { RelayNode } from '../signaling-server/relay.ts';

/** Four layers of four 1 MiB pieces each: a layer range is several pieces per peer. */
const SWARM_CONFIG = { ...syntheticConfig('tiny'), dim: 256, hiddenDim: 1024, headDim: 64, nLayers: 4 };

let relay: RelayNode;
let seeders: PeerNode[] = [];
let leecher: PeerNode;
let manifest: Manifest;
let seederStore: PieceStore;
const files: Record<string, Uint8Array> = {};
let webSeed: Server;
let webSeedUrl: string;
let webSeedHits = 0;

beforeAll(async () => {
  const compiled = await compileTo(createSyntheticCheckpointFromConfig(SWARM_CONFIG, 3, 'synthetic:swarm'), 'f32');
  manifest = compiled.manifest;
  seederStore = createMemoryPieceStore();
  for (const f of manifest.files) files[f.path] = new Uint8Array(await readFile(join(compiled.dir, f.path)));
  for (const key of piecesOfFiles(manifest, Object.keys(files))) {
    const at = locatePiece(manifest, key);
    await seederStore.put(manifest.id, key, files[at.file.path].subarray(at.offset, at.offset + at.length));
  }
  // A web seed that works, so that a test passing without it proves the peers carried every piece.
  webSeed = createServer((req, res) => {
    webSeedHits++;
    const file = files[(req.url ?? '').slice(1)];
    const [, a, b] = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '') ?? [];
    if (!file || a === undefined) return void res.writeHead(404).end();
    res.writeHead(206).end(file.slice(Number(a), Number(b) + 1));
  });
  await new Promise<void>((resolve) => webSeed.listen(0, '127.0.0.1', resolve));
  webSeedUrl = `http://127.0.0.1:${(webSeed.address() as AddressInfo).port}/`;

  relay = await startRelay({ host: '127.0.0.1', port: 0 });
  const relayAddrs = relay.getMultiaddrs().map(String);
  seeders = await Promise.all([createPeerNode({ relayAddrs }), createPeerNode({ relayAddrs })]);
  leecher = await createPeerNode({ relayAddrs });
  for (const seeder of seeders) await servePieces(seeder, { store: seederStore, packageIds: () => new Set([manifest.id]) });
});

afterAll(async () => {
  await Promise.allSettled([leecher, ...seeders].filter(Boolean).map((n) => n.stop()));
  await relay?.stop();
  await new Promise((resolve) => (webSeed ? webSeed.close(resolve) : resolve(undefined)));
  await removeTempDirs();
});

function fetcherFor(needed: PieceKey[], store: PieceStore) {
  const fetcher = createSwarmFetcher(
    { manifest, packageId: manifest.id, needed, webSeedUrl },
    {
      store,
      // The integration every grid peer uses: a direct WebRTC connection, one stream per request slot.
      openPieceStream: async (peer, signal) => (await dialDirect(leecher, peer, signal)).newStream(PIECES_PROTOCOL, { signal }),
      fetch,
    },
  );
  fetcher.setPeers(seeders.map((s) => ({ ...peerAddress(s), have: piecesOfFiles(manifest, Object.keys(files)) })));
  return fetcher;
}

async function holdsExactly(store: PieceStore, paths: string[]): Promise<boolean> {
  const assembled = await assembleFiles(manifest, store, paths);
  return paths.every((p) => Buffer.from(assembled[p]).equals(Buffer.from(files[p])));
}

describe('weight swarm over direct WebRTC', () => {
  it('fetches a layer range from two peers, every piece verified, none from the web seed', async () => {
    const needed = piecesForLayers(manifest, { start: 1, end: 3 });
    const store = createMemoryPieceStore();
    webSeedHits = 0;
    const report = await fetcherFor(needed, store).run(AbortSignal.timeout(60_000));
    expect(report).toMatchObject({ total: needed.length, verified: needed.length, fromPeers: needed.length, fromWebSeed: 0, badPieces: 0, dropped: [] });
    const [a, b] = seeders.map((s) => s.peerId.toString());
    expect(report.sources[a]).toBeGreaterThan(0);
    expect(report.sources[b]).toBeGreaterThan(0);
    expect(report.sources[a] + report.sources[b]).toBe(needed.length);
    expect(webSeedHits).toBe(0);
    expect(await holdsExactly(store, ['block-1.onnx', 'block-1.data', 'block-2.onnx', 'block-2.data'])).toBe(true);
    // Pieces crossed direct WebRTC connections, not the relay.
    for (const seeder of seeders) expect(leecher.getConnections(seeder.peerId).some(isDirectWebRTC)).toBe(true);
  });

  it('drops a peer that serves corrupt pieces and completes from the honest one', async () => {
    const [honest, liar] = seeders;
    await liar.unhandle(PIECES_PROTOCOL);
    await servePieces(liar, { store: corruptingStore(seederStore) });
    const needed = piecesForLayers(manifest, { start: 0, end: 2 });
    const store = createMemoryPieceStore();
    webSeedHits = 0;
    const report = await fetcherFor(needed, store).run(AbortSignal.timeout(60_000));
    expect(report.dropped).toEqual([liar.peerId.toString()]);
    expect(report.badPieces).toBeGreaterThanOrEqual(1);
    expect(report.sources).toEqual({ [honest.peerId.toString()]: needed.length });
    expect(webSeedHits).toBe(0);
    expect(await holdsExactly(store, ['block-0.onnx', 'block-0.data', 'block-1.onnx', 'block-1.data'])).toBe(true);
  });
});
