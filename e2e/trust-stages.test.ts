/**
 * Commit, challenge, reveal and replay over real libp2p in Node: stage peers (onnxruntime-node
 * shard engines on direct WebRTC) note every step they serve, sign a commitment with their
 * libp2p key when a request ends, and answer the validator's challenge; the validator (on the
 * relay node, as in the server) replays the challenged steps and gives verdicts. An honest
 * route passes; a stage that adds noise is caught; bad commitments and reveals are refused by
 * name and recorded.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { lpStream } from '@libp2p/utils';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { openCheckpoint } from '../cli/open-checkpoint.ts';
import { openClientSide } from '../cli/local-package.ts';
import { compileTo, packageBytes, removeTempDirs, STORIES_260K, TOK_512 } from '../cli/test-support.ts';
import { createShardEngine } from '../worker/engine.ts';
import type { EngineOrt } from '../worker/engine.ts';
import { startRelay } from '../signaling-server/relay.ts';
import type { RelayNode } from '../signaling-server/relay.ts';
import { createReplayer } from '../signaling-server/trust/replayer.ts';
import type { Replayer } from '../signaling-server/trust/replayer.ts';
import { startValidator } from '../signaling-server/trust/validator.ts';
import type { Refusal, Validator, Verdict } from '../signaling-server/trust/validator.ts';
import { createPeerNode, peerAddress } from '../shared/grid/node.ts';
import type { PeerNode } from '../shared/grid/node.ts';
import { serveStage } from '../shared/grid/stage-server.ts';
import type { StageEngine } from '../shared/grid/stage-server.ts';
import { createAttestor } from '../shared/grid/stage-attestor.ts';
import type { AttestationOutcome, AttestorDeps } from '../shared/grid/stage-attestor.ts';
import { createRouteLink, serveResults } from '../shared/grid/route-link.ts';
import type { ResultSink } from '../shared/grid/route-link.ts';
import type { RouteHop } from '../shared/grid/protocol.ts';
import { decodeTrustMessage, encodeCommit, TRUST_PROTOCOL } from '../shared/grid/trust-wire.ts';
import { createStepJournal } from '../shared/trust/step-journal.ts';
import { encodeSignedCommitment, signCommitment } from '../shared/trust/commitment.ts';
import { recordStep } from '../shared/trust/step-record.ts';
import { decodeFrame, encodeFrame } from '../shared/protocol/frame.ts';
import { createPipeline } from '../shared/runtime/pipeline.ts';
import type { Manifest } from '../shared/model/manifest.ts';

const RANGES = [
  { start: 0, end: 2 },
  { start: 2, end: 4 },
  { start: 4, end: 5 },
];
/** Short, so the late-answer test need not wait long; a reveal here takes milliseconds. */
const ANSWER_WINDOW_MS = 3_000;

interface StagePeer {
  node: PeerNode;
  privateKey: PrivateKey;
  hop: RouteHop;
  attestations: Promise<AttestationOutcome>[];
}

let relay: RelayNode;
let replayer: Replayer;
let validator: Validator;
let client: PeerNode;
let sink: ResultSink;
let dir: string;
let manifest: Manifest;
const verdicts: Verdict[] = [];
const refusals: Refusal[] = [];

/** Adds Gaussian noise of `sigma` × the output's RMS to every value: a stage that returns something close, but not the layers' output. */
function noisy(engine: StageEngine, sigma: number): StageEngine {
  return {
    end: (id) => engine.end(id),
    async step(frame) {
      const out = decodeFrame(await engine.step(frame));
      const rms = Math.sqrt(out.data.reduce((s, v) => s + v * v, 0) / out.data.length);
      const data = out.data.map((v) => v + sigma * rms * Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random()));
      return encodeFrame({ ...out, data });
    },
  };
}

async function startStage(layers: { start: number; end: number }, options: { sigma?: number; tamper?: AttestorDeps['tamper'] } = {}): Promise<StagePeer> {
  const relayAddrs = relay.getMultiaddrs().map(String);
  const privateKey = await generateKeyPair('Ed25519');
  const node = await createPeerNode({ relayAddrs, privateKey });
  const shard = createShardEngine({ ort: ort as unknown as EngineOrt, defaultProviders: ['cpu'] });
  await shard.load({ modelId: manifest.id, layers, source: await packageBytes(dir) });
  const engine = options.sigma ? noisy(shard, options.sigma) : shard;
  const journal = createStepJournal();
  const attestor = createAttestor({ packageId: manifest.id, layers }, { node, privateKey, journal, validator: relay.peerId, tamper: options.tamper });
  const peer: StagePeer = { node, privateKey, hop: { ...peerAddress(node), layers }, attestations: [] };
  const onRequestEnd = (id: string) => {
    const outcome = attestor.attest(id);
    outcome.catch(() => undefined); // judged by the test that awaits it
    peer.attestations.push(outcome);
  };
  await serveStage(node, { packageId: manifest.id, layers }, { engine, journal, onRequestEnd });
  return peer;
}

async function generate(route: StagePeer[], maxTokens = 24): Promise<string> {
  const side = await openClientSide(dir);
  const link = createRouteLink({ packageId: manifest.id, hops: route.map((p) => p.hop) }, { node: client, sink });
  const pipeline = createPipeline(
    { config: manifest.config, tokenizer: side.tokenizer.tokenizer, stopIds: side.tokenizer.stopIds, embedding: side.embedding, head: side.head, stages: [link], newRequestId: () => crypto.randomUUID() },
    { ort },
  );
  let text = '';
  for await (const t of pipeline.generate('Once upon a time', { maxTokens, temperature: 0, topP: 0.9, seed: 1 })) text += t.text;
  await side.head.release();
  return text;
}

/** Waits for every stage of a route to have answered, and the validator to have replayed. */
async function settled(route: StagePeer[]): Promise<AttestationOutcome[]> {
  const deadline = Date.now() + 20_000;
  while (route.some((p) => p.attestations.length === 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const outcomes = await Promise.all(route.flatMap((p) => p.attestations.splice(0)));
  await validator.idle();
  return outcomes;
}

let honest: StagePeer[];

beforeAll(async () => {
  ({ dir, manifest } = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'f32'));
  relay = await startRelay({ host: '127.0.0.1', port: 0 });
  replayer = createReplayer({ dir, manifest });
  validator = await startValidator({ manifest, answerWindowMs: ANSWER_WINDOW_MS }, { node: relay, replayer, onVerdict: (v) => verdicts.push(v), onRefusal: (r) => refusals.push(r) });
  honest = [];
  for (const layers of RANGES) honest.push(await startStage(layers));
  client = await createPeerNode({ relayAddrs: relay.getMultiaddrs().map(String) });
  sink = await serveResults(client);
});

afterAll(async () => {
  await validator?.stop();
  await replayer?.close();
  await Promise.all([client, ...(honest ?? []).map((p) => p.node), relay].map((n) => n?.stop()));
  await removeTempDirs();
});

describe('an honest route', () => {
  it('commits, answers its challenges, and every stage is judged honest', async () => {
    verdicts.length = 0;
    await generate(honest);
    const outcomes = await settled(honest);
    expect(outcomes).toHaveLength(3);
    for (const o of outcomes) {
      expect(o.challenged.length).toBeGreaterThan(0);
      expect(o.proofBytes).toBeGreaterThan(0);
    }
    expect(verdicts.map((v) => [v.peerId, v.ok])).toEqual(expect.arrayContaining(honest.map((p) => [p.hop.peerId, true])));
    expect(verdicts).toHaveLength(3);
    for (const v of verdicts) console.log(`honest ${v.layers.start}..${v.layers.end - 1}: checked ${v.checkedSteps.length} of ${v.stepCount} steps, worst margins ${JSON.stringify(v.worst.margins)}, replay ${v.replayMs.toFixed(1)} ms`);
  });
});

describe('a stage that adds noise to its output', () => {
  it('is caught: its verdict fails, confirmed by a second replay, while the honest stages pass', async () => {
    const cheat = await startStage(RANGES[1], { sigma: 0.05 });
    try {
      verdicts.length = 0;
      const route = [honest[0], cheat, honest[2]];
      await generate(route);
      await settled(route);
      const judged = new Map(verdicts.map((v) => [v.peerId, v]));
      expect(judged.get(cheat.hop.peerId)).toMatchObject({ ok: false, confirmed: true });
      expect(judged.get(honest[0].hop.peerId)?.ok).toBe(true);
    } finally {
      await cheat.node.stop();
    }
  });
});

describe('bad commitments and reveals', () => {
  it('refuses a reveal whose inputs are not the ones committed to, and records why', async () => {
    const cheat = await startStage(RANGES[2], { tamper: { reveal: (reveal) => reveal.inputs[0]?.fill(0) } });
    try {
      refusals.length = 0;
      const route = [honest[0], honest[1], cheat];
      await generate(route, 8);
      const failed = await Promise.allSettled(await waitForAttestations(cheat));
      expect(failed[0]).toMatchObject({ status: 'rejected', reason: { name: 'AttestationRefusedError' } });
      expect(refusals).toContainEqual(expect.objectContaining({ peerId: cheat.hop.peerId, name: 'RevealInvalidError' }));
    } finally {
      await cheat.node.stop();
    }
  });

  it('refuses an answer that comes after the answer window', async () => {
    const late = await startStage(RANGES[2], { tamper: { delayRevealMs: ANSWER_WINDOW_MS + 500 } });
    try {
      refusals.length = 0;
      await generate([honest[0], honest[1], late], 4);
      const [outcome] = await Promise.allSettled(await waitForAttestations(late));
      expect(outcome).toMatchObject({ status: 'rejected', reason: { name: 'AttestationRefusedError' } });
      expect(refusals).toContainEqual(expect.objectContaining({ peerId: late.hop.peerId, name: 'RevealLateError' }));
    } finally {
      await late.node.stop();
    }
  });

  it('refuses a commitment signed by another key, and one sent for another peer', async () => {
    const stage = honest[0];
    const record = await recordStep(new Float32Array(manifest.config.dim), new Float32Array(manifest.config.dim), { step: 0, position: 0, rows: 1 });
    const meta = { packageId: manifest.id, requestId: 'forged', layers: RANGES[0] };
    const byOther = await signCommitment([record], meta, await generateKeyPair('Ed25519'));
    const forged = { ...byOther, commitment: { ...byOther.commitment, peerId: stage.node.peerId.toString() } };
    refusals.length = 0;
    // Names this peer but is signed with another key.
    expect(await send(stage, encodeSignedCommitment(forged))).toMatchObject({ kind: 'error', failure: { name: 'CommitmentSignatureError' } });
    // Properly signed by this peer, but sent by another one.
    const other = honest[1];
    expect(await send(other, encodeSignedCommitment(await signCommitment([record], meta, stage.privateKey)))).toMatchObject({ kind: 'error', failure: { name: 'CommitmentRefusedError' } });
    expect(refusals.map((r) => r.name)).toEqual(['CommitmentSignatureError', 'CommitmentRefusedError']);
  });
});

async function waitForAttestations(peer: StagePeer): Promise<Promise<AttestationOutcome>[]> {
  const deadline = Date.now() + 20_000;
  while (peer.attestations.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return peer.attestations.splice(0);
}

async function send(from: StagePeer, commitment: Uint8Array) {
  const stream = await from.node.dialProtocol(relay.peerId, TRUST_PROTOCOL);
  const wire = lpStream(stream);
  await wire.write(encodeCommit(commitment));
  const answer = decodeTrustMessage((await wire.read()).subarray());
  await stream.close();
  return answer;
}
