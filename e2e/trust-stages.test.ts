/**
 * Commit, challenge, reveal and replay over real libp2p in Node: stage peers (onnxruntime-node
 * shard engines on direct WebRTC) note every step they serve, sign a commitment with their
 * libp2p key when a request ends, and answer the validator's challenge; the validator (on the
 * relay node, as in the server) replays the challenged steps and gives verdicts. An honest
 * route passes; a stage that adds noise is caught; bad commitments and reveals are refused by
 * name and recorded.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lpStream } from '@libp2p/utils';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { removeTempDirs } from '../testkit/model-fixtures.ts';
import type { StageEngine } from '../shared/grid/stage-server.ts';
import { TRUST_PROTOCOL } from '../shared/grid/protocol-ids.ts';
import { decodeTrustMessage, encodeCommit, maxRevealBytes } from '../shared/grid/trust-wire.ts';
import { encodeCommitment, encodeSignedCommitment, signCommitment } from '../shared/trust/commitment.ts';
import { recordStep } from '../shared/trust/step-record.ts';
import { decodeFrame, encodeFrame } from '../shared/protocol/frame.ts';
import { startTrustGrid } from '../testkit/trust-grid.ts';
import type { StageOptions, StagePeer, TrustGrid } from '../testkit/trust-grid.ts';

const RANGES = [
  { start: 0, end: 2 },
  { start: 2, end: 4 },
  { start: 4, end: 5 },
];
/** Short, so the late-answer test need not wait long; a reveal here takes milliseconds. */
const ANSWER_WINDOW_MS = 3_000;
/** Short, so the silent-stream test need not wait long; a stage commits as soon as it dials. */
const COMMIT_WINDOW_MS = 1_000;

let grid: TrustGrid;
let honest: StagePeer[];

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

/**
 * A copy one ulp off in its first value: what a lying stage notes instead of its true input or
 * output. Its own replay still matches, so only a seal can show the lie.
 */
function oneUlpOff(values: Float32Array): Float32Array {
  const copy = values.slice();
  new Uint32Array(copy.buffer)[0] ^= 1;
  return copy;
}

/**
 * Serves an 8-token request through the honest first and last stages and a middle stage that
 * lies as `lie` says, with the verdicts and refusals cleared before; `judge` then checks what the
 * validator made of it. The liar is stopped after.
 */
async function throughALiar(lie: StageOptions, judge: (liar: StagePeer, route: StagePeer[]) => Promise<void>): Promise<void> {
  const liar = await grid.startStage(RANGES[1], lie);
  try {
    grid.refusals.length = 0;
    grid.verdicts.length = 0;
    const route = [honest[0], liar, honest[2]];
    await grid.generate(route, 8);
    await judge(liar, route);
  } finally {
    await liar.node.stop();
  }
}

beforeAll(async () => {
  grid = await startTrustGrid({ answerWindowMs: ANSWER_WINDOW_MS, commitWindowMs: COMMIT_WINDOW_MS });
  honest = [];
  for (const layers of RANGES) honest.push(await grid.startStage(layers));
});

afterAll(async () => {
  await grid?.stop();
  await removeTempDirs();
});

describe('an honest route', () => {
  it('commits, answers its challenges, and every stage is judged honest', async () => {
    const { verdicts, refusals } = grid;
    verdicts.length = 0;
    refusals.length = 0;
    await grid.generate(honest);
    const outcomes = await grid.settled(honest);
    expect(outcomes).toHaveLength(3);
    for (const o of outcomes) {
      expect(o.challenged.length).toBeGreaterThan(0);
      expect(o.proofBytes).toBeGreaterThan(0);
    }
    expect(verdicts.map((v) => [v.peerId, v.ok])).toEqual(expect.arrayContaining(honest.map((p) => [p.hop.peerId, true])));
    expect(verdicts).toHaveLength(3);
    // The chain check found every link's bytes equal on both sides.
    expect(refusals).toEqual([]);
    for (const v of verdicts) console.log(`honest ${v.layers.start}..${v.layers.end - 1}: checked ${v.checkedSteps.length} of ${v.stepCount} steps, worst margins ${JSON.stringify(v.worst?.margins)}, replay ${v.replayMs.toFixed(1)} ms`);
  });
});

describe('a stage that adds noise to its output', () => {
  it('is caught: its verdict fails, confirmed by a second replay, while the honest stages pass', async () => {
    const cheat = await grid.startStage(RANGES[1], { wrap: (engine) => noisy(engine, 0.05) });
    const { verdicts } = grid;
    try {
      verdicts.length = 0;
      const route = [honest[0], cheat, honest[2]];
      await grid.generate(route);
      await grid.settled(route);
      const judged = new Map(verdicts.map((v) => [v.peerId, v]));
      expect(judged.get(cheat.hop.peerId)).toMatchObject({ ok: false, confirmed: true });
      expect(judged.get(honest[0].hop.peerId)?.ok).toBe(true);
    } finally {
      await cheat.node.stop();
    }
  });
});

describe('a stage that commits to an input it did not receive', () => {
  it('is convicted on its own commitment: the seal it holds from the stage before it does not cover those inputs', () =>
    throughALiar({ misreport: oneUlpOff }, async (liar) => {
      const { refusals, verdicts } = grid;
      const [attested] = await Promise.allSettled(await grid.waitForAttestations(liar));
      expect(attested).toMatchObject({ status: 'rejected', reason: { name: 'AttestationRefusedError' } });
      await grid.settled([honest[0], honest[2]]);
      const failed = verdicts.filter((v) => !v.ok);
      expect(failed.map((v) => [v.peerId, v.kind, v.confirmed])).toEqual([[liar.hop.peerId, 'unsealed-input', true]]);
      expect(failed[0].reason).toMatch(/request .*: it committed to inputs its upstream .* did not seal/);
      expect(refusals).toContainEqual(expect.objectContaining({ peerId: liar.hop.peerId, name: 'HandoffSealError' }));
      // The stage before it is not blamed.
      expect(verdicts.filter((v) => v.peerId === honest[0].hop.peerId).every((v) => v.ok)).toBe(true);
    }));
});

describe('a stage that sends one tensor and commits to another', () => {
  it('is convicted of equivocation: the next stage holds its seal over what it really sent', () =>
    throughALiar({ misrecordOutput: oneUlpOff }, async (liar, route) => {
      const { refusals, verdicts } = grid;
      await grid.settled(route);
      const failed = verdicts.filter((v) => !v.ok);
      expect(failed.map((v) => [v.peerId, v.kind])).toEqual([[liar.hop.peerId, 'equivocation']]);
      expect(failed[0].reason).toMatch(/step 0 of request .*: it sealed a tensor for the layer 4 stage .* other than the output it committed to/);
      // The evidence is its commitment followed by the next stage's record holding its seal.
      expect(failed[0].evidence.byteLength).toBeGreaterThan(200);
      expect(verdicts.filter((v) => v.peerId !== liar.hop.peerId).every((v) => v.ok)).toBe(true);
      expect(refusals).toEqual([]);
    }));
});

describe('a first stage', () => {
  it('answers only for inputs sealed by a client the coordinator routed through it', async () => {
    const { refusals, verdicts } = grid;
    const first = honest[0].hop.peerId;
    // The server's rule (route-grants.ts): this client was never given a route through this stage.
    await grid.restartValidator({ routedClient: (_client, firstStage) => firstStage !== first });
    try {
      refusals.length = 0;
      verdicts.length = 0;
      await grid.generate(honest, 4);
      const [outcome] = await Promise.allSettled(await grid.waitForAttestations(honest[0]));
      expect(outcome).toMatchObject({ status: 'rejected', reason: { name: 'AttestationRefusedError', message: expect.stringContaining('UnknownClientError') } });
      expect(refusals).toContainEqual(expect.objectContaining({ peerId: first, name: 'UnknownClientError', message: expect.stringMatching(/its inputs are sealed by .*, which the coordinator never gave a route through this stage/) }));
      await grid.settled(honest.slice(1));
      expect(verdicts.every((v) => v.ok)).toBe(true);
    } finally {
      await grid.restartValidator();
    }
  });
});

describe('bad commitments and reveals', () => {
  it('refuses a reveal whose inputs are not the ones committed to, and records why', async () => {
    const cheat = await grid.startStage(RANGES[2], { tamper: { reveal: (reveal) => reveal.inputs[0]?.fill(0) } });
    const { refusals } = grid;
    try {
      refusals.length = 0;
      const route = [honest[0], honest[1], cheat];
      await grid.generate(route, 8);
      const failed = await Promise.allSettled(await grid.waitForAttestations(cheat));
      expect(failed[0]).toMatchObject({ status: 'rejected', reason: { name: 'AttestationRefusedError' } });
      expect(refusals).toContainEqual(expect.objectContaining({ peerId: cheat.hop.peerId, name: 'RevealInvalidError' }));
    } finally {
      await cheat.node.stop();
    }
  });

  it('refuses an answer that comes after the answer window', async () => {
    const late = await grid.startStage(RANGES[2], { tamper: { delayRevealMs: ANSWER_WINDOW_MS + 500 } });
    const { refusals } = grid;
    try {
      refusals.length = 0;
      await grid.generate([honest[0], honest[1], late], 4);
      const [outcome] = await Promise.allSettled(await grid.waitForAttestations(late));
      expect(outcome).toMatchObject({ status: 'rejected', reason: { name: 'AttestationRefusedError' } });
      expect(refusals).toContainEqual(expect.objectContaining({ peerId: late.hop.peerId, name: 'RevealLateError' }));
    } finally {
      await late.node.stop();
    }
  });

  it('refuses a commitment signed by another key, and one sent for another peer', async () => {
    const stage = honest[0];
    const { manifest, refusals } = grid;
    const record = await recordStep(new Float32Array(manifest.config.dim), new Float32Array(manifest.config.dim), { step: 0, position: 0, rows: 1 });
    const meta = { packageId: manifest.id, requestId: 'forged', upstream: stage.node.peerId.toString(), upstreamRoot: new Uint8Array(32), upstreamSeal: new Uint8Array(64), layers: RANGES[0] };
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

describe('trust streams from anyone', () => {
  it('refuses a commitment to more steps than a request of the model can have', async () => {
    const stage = honest[0];
    const { manifest } = grid;
    const record = await recordStep(new Float32Array(manifest.config.dim), new Float32Array(manifest.config.dim), { step: 0, position: 0, rows: 1 });
    const meta = { packageId: manifest.id, requestId: 'endless', upstream: stage.node.peerId.toString(), upstreamRoot: new Uint8Array(32), upstreamSeal: new Uint8Array(64), layers: RANGES[1] };
    const { commitment } = await signCommitment([record], meta, stage.privateKey);
    for (const stepCount of [2 ** 32 - 1, manifest.config.maxSeqLen + 1]) {
      const endless = { ...commitment, stepCount, requestId: `endless-${stepCount}` };
      const signed = { commitment: endless, signature: new Uint8Array(await stage.privateKey.sign(encodeCommitment(endless))) };
      expect(await send(stage, encodeSignedCommitment(signed))).toMatchObject({
        kind: 'error',
        failure: { name: 'CommitmentRefusedError', message: `a commitment to ${stepCount} steps: a request of this model has at most ${manifest.config.maxSeqLen}` },
      });
    }
  });

  it('refuses a second commitment for the same request', async () => {
    const stage = honest[1];
    const { manifest } = grid;
    const record = await recordStep(new Float32Array(manifest.config.dim), new Float32Array(manifest.config.dim), { step: 0, position: 0, rows: 1 });
    const meta = { packageId: manifest.id, requestId: 'twice', upstream: honest[0].node.peerId.toString(), upstreamRoot: new Uint8Array(32), upstreamSeal: new Uint8Array(64), layers: RANGES[1] };
    const signed = encodeSignedCommitment(await signCommitment([record], meta, stage.privateKey));
    // The first is judged (its unsealed input convicts it, which is not this test's business); the second is not looked at.
    expect((await send(stage, signed)).kind).toBe('error');
    expect(await send(stage, signed)).toMatchObject({ kind: 'error', failure: { name: 'DuplicateCommitmentError' } });
  });

  it('ends a stream with no commitment after the commit window, and refuses a message larger than any reveal, by name', async () => {
    const stage = honest[2];
    const silent = lpStream(await stage.node.dialProtocol(grid.relay.peerId, TRUST_PROTOCOL));
    const started = Date.now();
    expect(decodeTrustMessage((await silent.read()).subarray())).toMatchObject({ kind: 'error', failure: { name: 'CommitmentLateError' } });
    expect(Date.now() - started).toBeGreaterThanOrEqual(COMMIT_WINDOW_MS - 50);

    const huge = await stage.node.dialProtocol(grid.relay.peerId, TRUST_PROTOCOL);
    const limit = maxRevealBytes(grid.manifest.config);
    // A varint declaring one byte more than the largest reveal of this model.
    const prefix: number[] = [];
    for (let n = limit + 1; ; n = Math.floor(n / 128)) {
      if (n < 128) {
        prefix.push(n);
        break;
      }
      prefix.push((n % 128) | 0x80);
    }
    huge.send(new Uint8Array(prefix));
    const answer = decodeTrustMessage((await lpStream(huge).read()).subarray());
    expect(answer).toMatchObject({ kind: 'error', failure: { name: 'TrustFrameError', message: expect.stringContaining(`at most ${limit} bytes`) } });
  });
});

async function send(from: StagePeer, commitment: Uint8Array) {
  const stream = await from.node.dialProtocol(grid.relay.peerId, TRUST_PROTOCOL);
  const wire = lpStream(stream);
  await wire.write(encodeCommit(commitment));
  const answer = decodeTrustMessage((await wire.read()).subarray());
  await stream.close();
  return answer;
}
