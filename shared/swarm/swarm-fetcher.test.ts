import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { streamPair } from '@libp2p/utils';
import { compileTo, removeTempDirs } from '../../testkit/model-fixtures.ts';
import { DirectConnectionError } from '../grid/node.ts';
import type { Manifest } from '../model/manifest.ts';
import { createSyntheticCheckpointFromConfig } from '../model/synthetic/checkpoint.ts';
import { syntheticConfig } from '../model/synthetic/presets.ts';
import { rejection } from '../../testkit/rejection.ts';
import { assembleFiles, locatePiece, piecesForLayers, piecesOfFiles } from './package-pieces.ts';
import type { PieceKey } from './piece-plan.ts';
import { WEB_SEED } from './piece-plan.ts';
import { handlePieceStream } from './piece-protocol.ts';
import { createMemoryPieceStore } from './piece-store.ts';
import { corruptingStore } from '../../testkit/swarm/corrupting-store.ts';
import type { PieceStore } from './piece-store.ts';
import { createSwarmFetcher } from './swarm-fetcher.ts';
import type { SwarmFetcherOptions, SwarmPeer, SwarmProgress } from './swarm-fetcher.ts';

/** Four layers whose f32 weights take four 1 MiB pieces per block (the tiny preset's fit in one). */
const SWARM_CONFIG = { ...syntheticConfig('tiny'), dim: 256, hiddenDim: 1024, headDim: 64, nLayers: 4 };

let manifest: Manifest;
let allPieces: PieceKey[];
const files: Record<string, Uint8Array> = {};
let webSeed: Server;
let seedBase: string;
/** Pieces the web seed was asked for, by piece key. */
const seedHits: PieceKey[] = [];

beforeAll(async () => {
  const compiled = await compileTo(createSyntheticCheckpointFromConfig(SWARM_CONFIG, 11, 'synthetic:swarm'), 'f32');
  manifest = compiled.manifest;
  allPieces = piecesOfFiles(manifest, manifest.files.map((f) => f.path));
  for (const f of manifest.files) files[f.path] = new Uint8Array(await readFile(join(compiled.dir, f.path)));
  // The web seed: /pkg/<file> serves the package with Range support, /corrupt/<file> flips every byte.
  webSeed = createServer((req, res) => {
    const [, mode, path] = /^\/(pkg|corrupt)\/(.+)$/.exec(req.url ?? '') ?? [];
    const file = files[path];
    if (!file) return void res.writeHead(404).end();
    const [, a, b] = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '') ?? [];
    const start = a === undefined ? 0 : Number(a);
    const end = b === undefined ? file.byteLength - 1 : Number(b);
    seedHits.push(`${path}#${start / manifest.pieceSize}`);
    let body = file.slice(start, end + 1);
    if (mode === 'corrupt') body = body.map((x) => x ^ 0xff);
    res.writeHead(a === undefined ? 200 : 206, { 'content-length': body.byteLength }).end(body);
  });
  await new Promise<void>((resolve) => webSeed.listen(0, '127.0.0.1', resolve));
  seedBase = `http://127.0.0.1:${(webSeed.address() as AddressInfo).port}/`;
});
afterAll(async () => {
  await new Promise((resolve) => webSeed.close(resolve));
  await removeTempDirs();
});

function pieceBytes(key: PieceKey): Uint8Array {
  const at = locatePiece(manifest, key);
  return files[at.file.path].subarray(at.offset, at.offset + at.length);
}

async function storeWith(keys: PieceKey[], store: PieceStore = createMemoryPieceStore()): Promise<PieceStore> {
  for (const key of keys) await store.put(manifest.id, key, pieceBytes(key));
  return store;
}

interface TestPeer {
  peerId: string;
  /** what it announces */
  have: PieceKey[];
  /** what it really holds (default: what it announces) */
  holds?: PieceKey[];
  corrupt?: boolean;
  unreachable?: boolean;
  /** accepts streams but never answers */
  silent?: boolean;
  /** this many stream opens fail before the peer answers (a dial that hangs, then works) */
  flakyOpens?: number;
}

/**
 * A swarm of in-memory peers: each runs the real piece server (handlePieceStream) on the far end
 * of an in-memory stream pair, and records the pieces it served, in order.
 */
async function swarm(peers: TestPeer[]) {
  const served = new Map<string, PieceKey[]>();
  const stores = new Map<string, PieceStore>();
  for (const peer of peers) {
    const store = await storeWith(peer.holds ?? peer.have);
    served.set(peer.peerId, []);
    stores.set(peer.peerId, {
      ...store,
      get: async (id, key) => {
        served.get(peer.peerId)!.push(key);
        return store.get(id, key);
      },
    });
  }
  const byId = new Map(peers.map((p) => [p.peerId, p]));
  const openPieceStream = async ({ peerId }: { peerId: string }) => {
    const peer = byId.get(peerId)!;
    if (peer.unreachable) throw new DirectConnectionError(`cannot open a direct WebRTC connection to ${peerId}`);
    if ((peer.flakyOpens ?? 0) > 0) {
      peer.flakyOpens!--;
      throw new DirectConnectionError(`the dial to ${peerId} timed out`);
    }
    const [outbound, inbound] = await streamPair();
    if (!peer.silent) void handlePieceStream(inbound, { store: peer.corrupt ? corruptingStore(stores.get(peerId)!) : stores.get(peerId)! });
    return outbound;
  };
  const announced: SwarmPeer[] = peers.map((p) => ({ peerId: p.peerId, addrs: [`/memory/${p.peerId}`], have: p.have }));
  return { served, openPieceStream, announced };
}

async function fetchWith(peers: TestPeer[], over: Partial<SwarmFetcherOptions> & { store?: PieceStore } = {}) {
  const { served, openPieceStream, announced } = await swarm(peers);
  const store = over.store ?? createMemoryPieceStore();
  seedHits.length = 0;
  const fetcher = createSwarmFetcher(
    { manifest, packageId: manifest.id, needed: allPieces, webSeedUrl: `${seedBase}pkg/`, ...over },
    { store, openPieceStream, fetch },
  );
  const events: SwarmProgress[] = [];
  fetcher.onProgress((p) => events.push(p));
  fetcher.setPeers(announced);
  return { fetcher, store, served, events, announced };
}

/** True when the store holds every needed piece with exactly the package's bytes. */
async function holdsExactly(store: PieceStore, keys: PieceKey[]): Promise<boolean> {
  const paths = [...new Set(keys.map((k) => locatePiece(manifest, k).file.path))];
  const assembled = await assembleFiles(manifest, store, paths);
  return paths.every((p) => Buffer.from(assembled[p]).equals(Buffer.from(files[p])));
}

describe('swarm fetcher', () => {
  it('fetches every needed piece from peers, verifies it and stores the package byte for byte', async () => {
    const { fetcher, store, events } = await fetchWith([
      { peerId: 'a', have: allPieces },
      { peerId: 'b', have: allPieces },
    ]);
    const report = await fetcher.run();
    expect(report).toMatchObject({ total: allPieces.length, verified: allPieces.length, resumed: 0, fromPeers: allPieces.length, fromWebSeed: 0, badPieces: 0, dropped: [] });
    expect(report.bytes).toBe(manifest.files.reduce((n, f) => n + f.size, 0));
    expect(await holdsExactly(store, allPieces)).toBe(true);
    expect(seedHits).toEqual([]);
    expect(events.at(-1)).toMatchObject({ verified: allPieces.length, total: allPieces.length });
    expect(events.map((e) => e.verified)).toEqual([...events.map((e) => e.verified)].sort((x, y) => x - y));
  });

  it('spreads requests over the peers that hold the pieces', async () => {
    const { fetcher, served } = await fetchWith([
      { peerId: 'a', have: allPieces },
      { peerId: 'b', have: allPieces },
      { peerId: 'c', have: allPieces },
    ], { maxPerPeer: 2 });
    const report = await fetcher.run();
    expect(Object.keys(report.sources).sort()).toEqual(['a', 'b', 'c']);
    expect(report.sources.a + report.sources.b + report.sources.c).toBe(allPieces.length);
    for (const peer of ['a', 'b', 'c']) {
      expect(report.sources[peer]).toBeGreaterThanOrEqual(Math.floor(allPieces.length / 6));
      expect(served.get(peer)).toHaveLength(report.sources[peer]);
    }
  });

  it('asks for the rarest pieces first', async () => {
    // Only `a` holds layer 3; everyone holds the rest. With one request per peer in flight,
    // `a` is kept on the rare pieces until they are all copied.
    const rare = piecesForLayers(manifest, { start: 3, end: 4 });
    const common = allPieces.filter((p) => !rare.includes(p));
    const { fetcher, served } = await fetchWith([
      { peerId: 'a', have: allPieces },
      { peerId: 'b', have: common },
      { peerId: 'c', have: common },
    ], { maxPerPeer: 1 });
    const report = await fetcher.run();
    expect(served.get('a')!.slice(0, rare.length)).toEqual(rare);
    expect(report.sources.a).toBeGreaterThanOrEqual(rare.length);
    expect(report.fromPeers).toBe(allPieces.length);
  });

  it('resumes: pieces already in the store are skipped and counted as resumed', async () => {
    const needed = piecesForLayers(manifest, { start: 0, end: 4 });
    const before = needed.filter((_, i) => i % 2 === 0);
    const { fetcher, store, served } = await fetchWith([{ peerId: 'a', have: allPieces }], { needed, store: await storeWith(before) });
    const report = await fetcher.run();
    expect(report).toMatchObject({ total: needed.length, resumed: before.length, verified: needed.length - before.length });
    expect(served.get('a')!.filter((k) => before.includes(k))).toEqual([]);
    expect(new Set(served.get('a'))).toEqual(new Set(needed.filter((k) => !before.includes(k))));
    expect(await holdsExactly(store, needed)).toBe(true);
  });

  it('a run with every piece already stored asks nobody', async () => {
    const needed = piecesForLayers(manifest, { start: 1, end: 2 });
    const { fetcher, served } = await fetchWith([{ peerId: 'a', have: allPieces }], { needed, store: await storeWith(needed) });
    expect(await fetcher.run()).toMatchObject({ total: needed.length, resumed: needed.length, verified: 0 });
    expect(served.get('a')).toEqual([]);
    expect(seedHits).toEqual([]);
  });

  it('drops a peer that sends a corrupt piece, never asks it again, and gets its pieces elsewhere', async () => {
    const { fetcher, store, served } = await fetchWith([
      { peerId: 'liar', have: allPieces, corrupt: true },
      { peerId: 'honest', have: allPieces },
    ], { maxPerPeer: 2 });
    const report = await fetcher.run();
    expect(report.dropped).toEqual(['liar']);
    expect(report.badPieces).toBeGreaterThanOrEqual(1);
    expect(report.badPieces).toBeLessThanOrEqual(2);
    // Only the requests already in flight when its first bad piece arrived reached the liar.
    expect(served.get('liar')!.length).toBeLessThanOrEqual(2);
    expect(report.sources).toEqual({ honest: allPieces.length });
    expect(await holdsExactly(store, allPieces)).toBe(true);
    expect(seedHits).toEqual([]);
  });

  it('gets a piece only a dropped peer holds from the web seed', async () => {
    const layer3 = piecesForLayers(manifest, { start: 3, end: 4 });
    const { fetcher, store } = await fetchWith([
      { peerId: 'liar', have: layer3, corrupt: true },
      { peerId: 'honest', have: allPieces.filter((p) => !layer3.includes(p)) },
    ]);
    const report = await fetcher.run();
    expect(report.dropped).toEqual(['liar']);
    expect(report.sources[WEB_SEED]).toBe(layer3.length);
    expect(new Set(seedHits)).toEqual(new Set(layer3));
    expect(await holdsExactly(store, allPieces)).toBe(true);
  });

  it('uses the web seed only for pieces no peer holds', async () => {
    const seedOnly = piecesOfFiles(manifest, ['head.onnx', 'head.data', 'tokenizer.bin']);
    const { fetcher, store } = await fetchWith([{ peerId: 'a', have: allPieces.filter((p) => !seedOnly.includes(p)) }]);
    const report = await fetcher.run();
    expect(report).toMatchObject({ fromWebSeed: seedOnly.length, fromPeers: allPieces.length - seedOnly.length });
    expect([...seedHits].sort()).toEqual([...seedOnly].sort());
    expect(await holdsExactly(store, allPieces)).toBe(true);
  });

  it('falls back to the web seed for pieces a peer announced but does not hold', async () => {
    const lost = piecesOfFiles(manifest, ['block-2.data']);
    const { fetcher, store } = await fetchWith([{ peerId: 'a', have: allPieces, holds: allPieces.filter((p) => !lost.includes(p)) }]);
    const report = await fetcher.run();
    expect(report.sources).toEqual({ a: allPieces.length - lost.length, [WEB_SEED]: lost.length });
    expect([...seedHits].sort()).toEqual([...lost].sort());
    expect(await holdsExactly(store, allPieces)).toBe(true);
  });

  it('routes around a peer it cannot reach', async () => {
    const { fetcher, store } = await fetchWith([
      { peerId: 'gone', have: allPieces, unreachable: true },
      { peerId: 'here', have: allPieces },
    ]);
    const report = await fetcher.run();
    expect(report.sources).toEqual({ here: allPieces.length });
    expect(report.dropped).toEqual([]);
    expect(await holdsExactly(store, allPieces)).toBe(true);
  });

  it('asks a peer whose stream failed once more before falling back to the web seed', async () => {
    const { fetcher, store } = await fetchWith([{ peerId: 'flaky', have: allPieces, flakyOpens: 1 }]);
    const report = await fetcher.run();
    expect(report.sources).toEqual({ flaky: allPieces.length });
    expect(seedHits).toEqual([]);
    expect(await holdsExactly(store, allPieces)).toBe(true);
  });

  it('gives up on a peer that does not answer in time and gets its pieces elsewhere', async () => {
    const needed = piecesForLayers(manifest, { start: 0, end: 2 });
    const { fetcher, store } = await fetchWith([
      { peerId: 'silent', have: needed, silent: true },
      { peerId: 'busy', have: needed },
    ], { needed, requestTimeoutMs: 200 });
    const report = await fetcher.run();
    expect(report.sources).toEqual({ busy: needed.length });
    expect(await holdsExactly(store, needed)).toBe(true);
  });

  it('fails with a PackageError naming the piece when the web seed sends bad bytes', async () => {
    const needed = piecesOfFiles(manifest, ['tokenizer.bin']);
    const { fetcher, store } = await fetchWith([], { needed, webSeedUrl: `${seedBase}corrupt/` });
    const err = await rejection(fetcher.run());
    expect(err.name).toBe('PackageError');
    expect(err.message).toContain('the web seed sent bad bytes for piece tokenizer.bin#0');
    expect(err.source).toBe(`${seedBase}corrupt/tokenizer.bin`);
    expect(await store.keys(manifest.id)).toEqual(new Set());
  });

  it('fails with a WebSeedError when the web seed does not have the file', async () => {
    const { fetcher } = await fetchWith([], { needed: ['embed.data#0'], webSeedUrl: `${seedBase}missing/` });
    const err = await rejection(fetcher.run());
    expect(err.name).toBe('WebSeedError');
    expect(err.message).toContain('HTTP 404');
  });

  it('without a web seed, waits for setPeers to announce a holder instead of giving up', async () => {
    const needed = piecesForLayers(manifest, { start: 0, end: 1 });
    const { fetcher, announced } = await fetchWith([{ peerId: 'late', have: needed }], { needed, webSeedUrl: undefined });
    fetcher.setPeers([]);
    let done = false;
    const running = fetcher.run().then((r) => ((done = true), r));
    await new Promise((r) => setTimeout(r, 100));
    expect(done).toBe(false);
    fetcher.setPeers(announced);
    expect(await running).toMatchObject({ verified: needed.length, sources: { late: needed.length } });
  });

  it('rejects with the abort reason when its signal aborts', async () => {
    const { fetcher } = await fetchWith([], { webSeedUrl: undefined });
    const controller = new AbortController();
    const running = fetcher.run(controller.signal);
    controller.abort(new Error('visitor left'));
    expect((await rejection(running)).message).toBe('visitor left');
  });

  it('ends the run with the store\'s StorageQuotaError when the store is full', async () => {
    const { fetcher } = await fetchWith([{ peerId: 'a', have: allPieces }], { store: createMemoryPieceStore({ maxBytes: 3 << 20 }) });
    expect((await rejection(fetcher.run())).name).toBe('StorageQuotaError');
  });

  it('refuses a needed key that is not a piece of the package before fetching anything', () => {
    expect(() => createSwarmFetcher(
      { manifest, packageId: manifest.id, needed: ['block-9.data#0'], webSeedUrl: seedBase },
      { store: createMemoryPieceStore(), openPieceStream: () => Promise.reject(new Error('unused')), fetch },
    )).toThrow(expect.objectContaining({ name: 'PackageError' }));
  });
});
