/**
 * Pipelined generation over real libp2p in Node: a relay, three stage peers (shard engines on
 * onnxruntime-node) and a client, every tensor on direct WebRTC (node-datachannel). The route's
 * tokens equal the local runner's; bad input is refused to its sender by name while the stages
 * keep serving.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import * as ort from 'onnxruntime-node';
import { lpStream } from '@libp2p/utils';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { openCheckpoint } from '../cli/open-checkpoint.ts';
import { openClientSide, openLocalPipeline } from '../worker/node/local-package.ts';
import { compileTo, packageBytes, removeTempDirs, STORIES_260K, TOK_512 } from '../testkit/model-fixtures.ts';
import { createShardEngine } from '../worker/engine.ts';
import type { EngineOrt } from '../worker/engine.ts';
import { startRelay } from '../signaling-server/relay.ts';
import type { RelayNode } from '../signaling-server/relay.ts';
import { createPeerNode, dialDirect, isDirectWebRTC, peerAddress } from '../shared/grid/node.ts';
import type { PeerNode } from '../shared/grid/node.ts';
import { serveStage } from '../shared/grid/stage-server.ts';
import { keepSpare, openWithSpare } from '../shared/grid/spare-streams.ts';
import { createRouteLink, serveResults } from '../shared/grid/route-link.ts';
import type { ResultSink } from '../shared/grid/route-link.ts';
import { PROBE_PROTOCOL, STAGE_PROTOCOL } from '../shared/grid/protocol-ids.ts';
import { createEchoes, serveProbe } from '../shared/grid/probe.ts';
import type { RouteHop } from '../shared/grid/protocol.ts';
import { decodeStageMessage, encodeFrameMessage, encodeOpen } from '../shared/grid/stage-wire.ts';
import { encodeFrame } from '../shared/protocol/frame.ts';
import { createPipeline } from '../shared/runtime/pipeline.ts';
import type { Manifest } from '../shared/model/manifest.ts';

const RANGES = [
  { start: 0, end: 2 },
  { start: 2, end: 4 },
  { start: 4, end: 5 },
];

let relay: RelayNode;
let stages: PeerNode[] = [];
let client: PeerNode;
let sink: ResultSink;
let dir: string;
let manifest: Manifest;
let hops: RouteHop[];

beforeAll(async () => {
  ({ dir, manifest } = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'f32'));
  relay = await startRelay({ host: '127.0.0.1', port: 0 });
  const relayAddrs = relay.getMultiaddrs().map(String);
  const source = await packageBytes(dir);
  stages = await Promise.all(RANGES.map(() => createPeerNode({ relayAddrs })));
  for (const [i, node] of stages.entries()) {
    const engine = createShardEngine({ ort: ort as unknown as EngineOrt, defaultProviders: ['cpu'] });
    await engine.load({ modelId: manifest.id, layers: RANGES[i], source });
    await serveStage(node, { packageId: manifest.id, layers: RANGES[i] }, { engine });
    await serveProbe(node);
  }
  client = await createPeerNode({ relayAddrs });
  sink = await serveResults(client);
  hops = stages.map((node, i) => ({ ...peerAddress(node), layers: RANGES[i] }));
});

afterAll(async () => {
  await Promise.all([client, ...stages, relay].map((n) => n?.stop()));
  await removeTempDirs();
});

async function gridPipeline(routeHops = hops) {
  const side = await openClientSide(dir);
  const link = createRouteLink({ packageId: manifest.id, hops: routeHops }, { node: client, sink });
  const pipeline = createPipeline(
    { config: manifest.config, tokenizer: side.tokenizer.tokenizer, stopIds: side.tokenizer.stopIds, embedding: side.embedding, head: side.head, stages: [link], newRequestId: () => crypto.randomUUID() },
    { ort },
  );
  return { pipeline, link };
}

async function text(gen: AsyncIterable<{ text: string }>) {
  let out = '';
  for await (const t of gen) out += t.text;
  return out;
}

describe('pipelined generation over direct WebRTC', () => {
  it('produces the local runner’s tokens through three stage peers, every hop direct', async () => {
    const opts = { maxTokens: 60, temperature: 0, topP: 0.9, seed: 1 };
    const local = await openLocalPipeline(dir, { stages: 1 });
    const expected = await text(local.pipeline.generate('Once upon a time', opts));
    await local.release();
    const { pipeline, link } = await gridPipeline();
    expect(await text(pipeline.generate('Once upon a time', opts))).toBe(expected);
    const report = link.report();
    expect(report.map((h) => h.transport)).toEqual(['webrtc-direct', 'webrtc-direct', 'webrtc-direct', 'webrtc-direct']);
    expect(report.slice(0, 3).every((h) => typeof h.stageMs === 'number' && h.stageMs >= 0)).toBe(true);
  });

  it('lets a shared dial go on for the callers that wait when one that shares it gives up', async () => {
    // An echo allowed a few hundred ms must not abort the dial a route is opening on.
    const prober = await createPeerNode({ relayAddrs: relay.getMultiaddrs().map(String) });
    try {
      const impatient = dialDirect(prober, peerAddress(stages[1]), AbortSignal.timeout(1));
      const patient = dialDirect(prober, peerAddress(stages[1]));
      await expect(impatient).rejects.toMatchObject({ name: 'TimeoutError' });
      expect(isDirectWebRTC(await patient)).toBe(true);
    } finally {
      await prober.stop();
    }
  });

  it('echoes a stage over one kept stream, opened ahead when warmed, and says no at once for a peer it cannot reach', async () => {
    const echoes = createEchoes(client);
    try {
      expect(await echoes.answers(hops[1], 5_000)).toBe(true);
      expect(await echoes.answers(hops[1], 5_000)).toBe(true);
      const probeStreams = client.getConnections().filter((c) => c.remotePeer.toString() === hops[1].peerId).flatMap((c) => c.streams).filter((st) => st.protocol === PROBE_PROTOCOL);
      expect(probeStreams).toHaveLength(1);
      const gone = { peerId: peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString(), addrs: [] };
      expect(await echoes.answers(gone, 5_000)).toBe(false);
      // Warmed ahead, a stage's first echo rides a stream that is already open.
      const probesTo = (peerId: string) => client.getConnections().filter((c) => c.remotePeer.toString() === peerId).flatMap((c) => c.streams).filter((st) => st.protocol === PROBE_PROTOCOL && st.status === 'open');
      echoes.warm(hops[2]);
      await vi.waitUntil(() => probesTo(hops[2].peerId).length === 1, { timeout: 10_000, interval: 20 });
      const [warmed] = probesTo(hops[2].peerId);
      expect(await echoes.answers(hops[2], 5_000)).toBe(true);
      expect(probesTo(hops[2].peerId)).toEqual([warmed]);
    } finally {
      echoes.close();
    }
  });

  it('ends a request open on a stage that stops serving with StageStoppedError naming it, at once', async () => {
    // A tab moved to other layers mid-request: the client must hear so, not wait for a deadline.
    const node = await createPeerNode({ relayAddrs: relay.getMultiaddrs().map(String) });
    try {
      const engine = createShardEngine({ ort: ort as unknown as EngineOrt, defaultProviders: ['cpu'] });
      await engine.load({ modelId: manifest.id, layers: RANGES[0], source: await packageBytes(dir) });
      const stage = await serveStage(node, { packageId: manifest.id, layers: RANGES[0] }, { engine });
      // The client expects the request's results, so the last stage's result stream is not refused.
      sink.expect('moved', () => undefined, () => undefined);
      const lp = lpStream(await (await dialDirect(client, peerAddress(node))).newStream(STAGE_PROTOCOL), { maxDataLength: 64 << 20 });
      await lp.write(encodeOpen({ requestId: 'moved', packageId: manifest.id, hops: [{ ...peerAddress(node), layers: RANGES[0] }, ...hops.slice(1)], client: peerAddress(client) }));
      await vi.waitUntil(() => stage.stats().activeRequests === 1, { timeout: 10_000, interval: 20 });
      await stage.stop();
      const message = decodeStageMessage((await lp.read()).subarray());
      expect(message).toMatchObject({ kind: 'error', failure: { name: 'StageStoppedError', peerId: node.peerId.toString(), requestId: 'moved' } });
    } finally {
      sink.forget('moved');
      await node.stop();
    }
  });

  it('hands a request the spare stream opened ahead, and a stage that stops closes the spares it holds', async () => {
    const node = await createPeerNode({ relayAddrs: relay.getMultiaddrs().map(String) });
    const stageStreams = () => client.getConnections().filter((c) => c.remotePeer.equals(node.peerId)).flatMap((c) => c.streams).filter((st) => st.protocol === STAGE_PROTOCOL);
    try {
      const engine = createShardEngine({ ort: ort as unknown as EngineOrt, defaultProviders: ['cpu'] });
      await engine.load({ modelId: manifest.id, layers: RANGES[0], source: await packageBytes(dir) });
      const stage = await serveStage(node, { packageId: manifest.id, layers: RANGES[0] }, { engine });
      keepSpare(client, peerAddress(node), STAGE_PROTOCOL);
      await vi.waitUntil(() => stageStreams().some((st) => st.status === 'open'), { timeout: 10_000, interval: 20 });
      const asked = Date.now();
      const { stream } = await openWithSpare(client, peerAddress(node), STAGE_PROTOCOL);
      expect(stream.timeline.open).toBeLessThan(asked);
      // Another spare is opened for the next request.
      await vi.waitUntil(() => stageStreams().filter((st) => st.status === 'open').length === 2, { timeout: 10_000, interval: 20 });
      await stage.stop();
      // Neither the spare nor the stream taken (no OPEN on it yet) may reach a stage that stopped.
      await vi.waitUntil(() => stageStreams().every((st) => st.status !== 'open'), { timeout: 10_000, interval: 20 });
      await expect(openWithSpare(client, peerAddress(node), STAGE_PROTOCOL)).rejects.toThrow(/protocol/i);
    } finally {
      await node.stop();
    }
  });

  it('keeps generating after the relay stops once the route’s connections are up', async () => {
    const opts = { maxTokens: 30, temperature: 0, topP: 0.9, seed: 1 };
    const { pipeline } = await gridPipeline();
    const before = await text(pipeline.generate('Once upon a time', opts));
    // A second relay is started for later tests only if needed; this one is gone for good.
    await relay.stop();
    expect(await text(pipeline.generate('Once upon a time', opts))).toBe(before);
  });
});

describe('bad input to a stage', () => {
  async function openStream(to: PeerNode) {
    const conn = await dialDirect(client, peerAddress(to));
    return lpStream(await conn.newStream(STAGE_PROTOCOL), { maxDataLength: 64 << 20 });
  }
  const refusal = async (lp: Awaited<ReturnType<typeof openStream>>) => {
    const message = decodeStageMessage((await lp.read()).subarray());
    if (message.kind !== 'error') throw new Error(`expected an ERROR, got ${message.kind}`);
    return message.failure;
  };
  const open = (requestId: string, layers = RANGES[0]) => encodeOpen({ requestId, packageId: manifest.id, hops: [{ ...hops[0], layers }, ...hops.slice(1)], client: peerAddress(client) });

  it('refuses an OPEN for layers the stage does not serve', async () => {
    const lp = await openStream(stages[0]);
    await lp.write(open('wrong-layers', { start: 0, end: 3 }));
    const failure = await refusal(lp);
    expect(failure.name).toBe('WrongStageError');
    expect(failure.message).toContain('serves layers 0..1, not 0..2');
  });

  it('names the next stage as lost when it cannot be reached, so the client swaps that one and not this', async () => {
    // A peer that left: nobody can dial it any more.
    const address = { peerId: peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString(), addrs: [] };
    const lp = await openStream(stages[0]);
    await lp.write(encodeOpen({ requestId: 'next-gone', packageId: manifest.id, hops: [hops[0], { ...address, layers: RANGES[1] }, hops[2]], client: peerAddress(client) }));
    expect(await refusal(lp)).toMatchObject({ name: 'StageLostError', peerId: hops[0].peerId, lost: address.peerId, message: expect.stringContaining(`could not reach the next stage ${address.peerId}`) });
  });

  it('refuses the replays a swap could send wrong, by name: unknown request, longer than the context, layers a standby does not hold', async () => {
    const dim = manifest.config.dim;
    const frame = (requestId: string, position: number, rows: number) => encodeFrameMessage([], encodeFrame({ requestId, step: 0, position, dims: [1, rows, dim], data: new Float32Array(rows * dim) }));
    // A continuation for a request this stage never rebuilt: a replay must start at position 0.
    const unknown = await openStream(stages[0]);
    await unknown.write(open('replay-unknown'));
    await unknown.write(frame('replay-unknown', 7, 1));
    expect(await refusal(unknown)).toMatchObject({ name: 'UnknownRequestError', message: expect.stringContaining('unknown request replay-unknown (a new request starts at position 0)') });
    // A replay of more rows than the model's context.
    const long = await openStream(stages[0]);
    await long.write(open('replay-long'));
    await long.write(frame('replay-long', 0, manifest.config.maxSeqLen + 1));
    expect(await refusal(long)).toMatchObject({ name: 'FrameError', message: expect.stringContaining(`positions up to ${manifest.config.maxSeqLen + 1} exceed the context of ${manifest.config.maxSeqLen}`) });
    // A standby (here the last stage, layers 4..4) put on a route for layers it does not hold.
    const standby = await openStream(stages[2]);
    await standby.write(encodeOpen({ requestId: 'wrong-standby', packageId: manifest.id, hops: [hops[0], hops[1], { ...hops[2], layers: RANGES[1] }], client: peerAddress(client) }));
    expect(await refusal(standby)).toMatchObject({ name: 'WrongStageError', message: expect.stringContaining('serves layers 4..4, not 2..3') });
  });

  it('refuses malformed frames, frames for unknown requests and oversized messages, and keeps serving', async () => {
    const lp = await openStream(stages[0]);
    sink.expect('bad-input', () => undefined, () => undefined);
    await lp.write(open('bad-input'));
    await lp.write(encodeFrameMessage([], new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19])));
    expect((await refusal(lp)).name).toBe('FrameError');
    const dim = manifest.config.dim;
    await lp.write(encodeFrameMessage([], encodeFrame({ requestId: 'someone-else', step: 0, position: 0, dims: [1, 1, dim], data: new Float32Array(dim) })));
    const unknown = await refusal(lp);
    expect(unknown.name).toBe('WrongRequestError');
    expect(unknown.message).toContain('someone-else');
    // The stage refuses at the length prefix and drops the stream, so the rest of this write may be cut off:
    // read the refusal while it is still being sent.
    const writing = lp.write(new Uint8Array(33 << 20)).catch(() => undefined);
    const oversized = await refusal(lp);
    await writing;
    expect(oversized.name).toBe('StageMessageError');
    expect(oversized.message).toContain(`limit ${32 << 20} bytes`);
    sink.forget('bad-input');
    // The stage still serves a well-formed request.
    const { pipeline } = await gridPipeline();
    expect((await text(pipeline.generate('Once upon a time', { maxTokens: 5, temperature: 0, topP: 0.9, seed: 1 }))).length).toBeGreaterThan(0);
  });
});
