/**
 * A trust grid in one Node process, for the tests of the commit-challenge-replay path
 * (e2e/trust-stages.test.ts, e2e/trust-faults.test.ts) and the trust bench: a model package
 * (stories260K f32 unless given), a relay with the validator on it (as in the server), stage
 * peers that serve a layer range from an onnxruntime-node shard engine over direct WebRTC and
 * attest every request they serve, and a client that generates through a route of them.
 */
import * as ort from 'onnxruntime-node';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { openCheckpoint } from '../cli/open-checkpoint.ts';
import { openClientSide } from '../worker/node/local-package.ts';
import { compileTo, packageBytes, STORIES_260K, TOK_512 } from './model-fixtures.ts';
import type { StageFault } from './engine/stage-fault.ts';
import { createFaultyEngine } from './engine/faulty-engine.ts';
import type { EngineOrt } from '../worker/engine.ts';
import { startRelay } from '../signaling-server/relay.ts';
import type { RelayNode } from '../signaling-server/relay.ts';
import { createReplayer } from '../signaling-server/trust/replayer.ts';
import type { Replayer } from '../signaling-server/trust/replayer.ts';
import { startValidator } from '../signaling-server/trust/validator.ts';
import type { Refusal, ReplayBacklog, Validator, ValidatorDeps, Verdict } from '../signaling-server/trust/validator.ts';
import { createPeerNode, peerAddress } from '../shared/grid/node.ts';
import type { PeerNode } from '../shared/grid/node.ts';
import { serveStage } from '../shared/grid/stage-server.ts';
import type { StageEngine } from '../shared/grid/stage-server.ts';
import { createAttestor } from '../shared/grid/stage-attestor.ts';
import type { AttestationOutcome, AttestorDeps } from '../shared/grid/stage-attestor.ts';
import { createRouteLink, serveResults } from '../shared/grid/route-link.ts';
import type { ResultSink } from '../shared/grid/route-link.ts';
import type { RouteHop } from '../shared/grid/protocol.ts';
import { createStepJournal } from '../shared/trust/step-journal.ts';
import type { StepJournal } from '../shared/trust/step-journal.ts';
import { readPackageManifest } from '../worker/node/package-files.ts';
import { createPipeline } from '../shared/runtime/pipeline.ts';
import type { Pipeline } from '../shared/runtime/pipeline.ts';
import { PIPELINE_SESSION_OPTIONS } from '../shared/runtime/ort.ts';
import type { Manifest } from '../shared/model/manifest.ts';
import type { LayerRange } from '../shared/runtime/stage.ts';

export interface StagePeer {
  node: PeerNode;
  privateKey: PrivateKey;
  hop: RouteHop;
  /** one per request served, in the order they ended */
  attestations: Promise<AttestationOutcome>[];
}

export interface StageOptions {
  /** serves with a stage fault (engine/faulty-engine.ts) */
  fault?: StageFault;
  /** wraps the engine the stage serves from */
  wrap?: (engine: StageEngine) => StageEngine;
  tamper?: AttestorDeps['tamper'];
  /** whether the stage notes its steps and answers for its requests now (default: always); the bench switches it */
  attest?: () => boolean;
  /**
   * test-only: the input the stage notes instead of the one it received, committing to it
   * without checking its upstream's seals (a stage that makes up its input)
   */
  misreport?: (input: Float32Array) => Float32Array;
  /** test-only: the output the stage notes instead of the one it sealed and sent (a stage that equivocates) */
  misrecordOutput?: (output: Float32Array) => Float32Array;
}

export interface TrustGrid {
  dir: string;
  manifest: Manifest;
  relay: RelayNode;
  /** the validator now running (restartValidator replaces it) */
  validator: Validator;
  /**
   * Stops the validator and starts another on the same relay, as a server restart does: it
   * picks up the replays the backlog holds. Its replayer: `replayer`, else the grid's own;
   * `routedClient` as the server passes it (ValidatorDeps), else none.
   */
  restartValidator(deps?: { replayer?: Replayer; routedClient?: ValidatorDeps['routedClient'] }): Promise<Validator>;
  /** every verdict and refusal the validator gave, in order; tests clear them as they need */
  verdicts: Verdict[];
  refusals: Refusal[];
  startStage(layers: LayerRange, options?: StageOptions): Promise<StagePeer>;
  /** Greedy generation of `maxTokens` through the route; the text. */
  generate(route: StagePeer[], maxTokens?: number): Promise<string>;
  /**
   * A client pipeline through the route, for step-by-step use; release it when done. It seals
   * the frames of the requests it starts while `seal` says so (default: always).
   */
  client(route: StagePeer[], options?: { seal?: () => boolean }): Promise<{ pipeline: Pipeline; release(): Promise<void> }>;
  /** Waits for every stage of the route to have answered, and the validator to have replayed. */
  settled(route: StagePeer[]): Promise<AttestationOutcome[]>;
  /** The attestations of one peer once it has made at least one. */
  waitForAttestations(peer: StagePeer): Promise<Promise<AttestationOutcome>[]>;
  stop(): Promise<void>;
}

export interface TrustGridOptions {
  answerWindowMs?: number;
  commitWindowMs?: number;
  /** a compiled package; default stories260K f32 */
  dir?: string;
  /** where the validator keeps replays it owes (a grid store); default: none */
  backlog?: ReplayBacklog;
  /** the first validator's replayer; default: one on onnxruntime-node for the package */
  replayer?: Replayer;
}

export async function startTrustGrid(options: TrustGridOptions = {}): Promise<TrustGrid> {
  const { dir, manifest } = options.dir
    ? { dir: options.dir, manifest: await readPackageManifest(options.dir) }
    : await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'f32');
  const source = await packageBytes(dir);
  const relay = await startRelay({ host: '127.0.0.1', port: 0 });
  const replayer: Replayer = createReplayer({ dir, manifest });
  const verdicts: Verdict[] = [];
  const refusals: Refusal[] = [];
  const startOn = (with_: Replayer, routedClient?: ValidatorDeps['routedClient']) =>
    startValidator(
      { manifest, answerWindowMs: options.answerWindowMs, commitWindowMs: options.commitWindowMs },
      { node: relay, replayer: with_, backlog: options.backlog, routedClient, onVerdict: (v) => verdicts.push(v), onRefusal: (r) => refusals.push(r) },
    );
  let validator = await startOn(options.replayer ?? replayer);
  const clientKey = await generateKeyPair('Ed25519');
  const client = await createPeerNode({ relayAddrs: relay.getMultiaddrs().map(String), privateKey: clientKey });
  const sink: ResultSink = await serveResults(client);
  const peers: PeerNode[] = [];

  const waitFor = async (done: () => boolean) => {
    const deadline = Date.now() + 20_000;
    while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  };

  const openClient: TrustGrid['client'] = async (route, clientOptions = {}) => {
    const side = await openClientSide(dir);
    const sealing = clientOptions.seal ?? (() => true);
    // Read as each request opens its stream: a request is sealed when sealing was on at its start.
    const link = createRouteLink({ packageId: manifest.id, hops: route.map((p) => p.hop) }, {
      node: client,
      sink,
      get privateKey() {
        return sealing() ? clientKey : undefined;
      },
    });
    const pipeline = createPipeline(
      { config: manifest.config, tokenizer: side.tokenizer.tokenizer, stopIds: side.tokenizer.stopIds, embedding: side.embedding, head: side.head, stages: [link], newRequestId: () => crypto.randomUUID() },
      { ort },
    );
    return { pipeline, release: () => side.head.release() };
  };

  return {
    dir,
    manifest,
    relay,
    get validator() {
      return validator;
    },
    async restartValidator(deps = {}) {
      await validator.stop();
      validator = await startOn(deps.replayer ?? replayer, deps.routedClient);
      return validator;
    },
    verdicts,
    refusals,
    async startStage(layers, stageOptions = {}) {
      const privateKey = await generateKeyPair('Ed25519');
      const node = await createPeerNode({ relayAddrs: relay.getMultiaddrs().map(String), privateKey });
      peers.push(node);
      // Pipeline session settings: with onnxruntime's defaults each stage's threads would spin on
      // after its run and slow the next stage in this same process (all stages share 2 cores here).
      const shard = createFaultyEngine({ ort: ort as unknown as EngineOrt, defaultProviders: ['cpu'], sessionOptions: PIPELINE_SESSION_OPTIONS }, stageOptions.fault);
      await shard.load({ modelId: manifest.id, layers, source });
      const engine = stageOptions.wrap ? stageOptions.wrap(shard) : shard;
      const attesting = stageOptions.attest ?? (() => true);
      const kept = createStepJournal({ skipSealCheck: stageOptions.misreport !== undefined });
      // A journal that notes nothing while attesting is off: the stage server then commits to nothing.
      // A request is answered for when attesting was on at its first step (its end comes later, after the switch may have moved).
      const noted = new Set<string>();
      const journal: StepJournal = {
        ...kept,
        record(id, meta, input, output) {
          if (meta.step === 0 && attesting()) noted.add(id);
          if (noted.has(id)) kept.record(id, meta, stageOptions.misreport?.(input) ?? input, stageOptions.misrecordOutput?.(output) ?? output);
        },
      };
      const attestor = createAttestor({ packageId: manifest.id, layers }, { node, privateKey, journal, validator: relay.peerId, tamper: stageOptions.tamper });
      const peer: StagePeer = { node, privateKey, hop: { ...peerAddress(node), layers }, attestations: [] };
      const onRequestEnd = (id: string) => {
        if (!noted.delete(id)) return;
        const outcome = attestor.attest(id);
        outcome.catch(() => undefined); // judged by the test that awaits it
        peer.attestations.push(outcome);
      };
      await serveStage(node, { packageId: manifest.id, layers }, {
        engine,
        journal,
        onRequestEnd,
        // Read as each request's stream opens: the stage seals what it sends while it attests.
        get privateKey() {
          return attesting() ? privateKey : undefined;
        },
      });
      return peer;
    },
    client: openClient,
    async generate(route, maxTokens = 24) {
      const { pipeline, release } = await openClient(route);
      let text = '';
      for await (const t of pipeline.generate('Once upon a time', { maxTokens, temperature: 0, topP: 0.9, seed: 1 })) text += t.text;
      await release();
      return text;
    },
    async settled(route) {
      await waitFor(() => route.every((p) => p.attestations.length > 0));
      const outcomes = await Promise.all(route.flatMap((p) => p.attestations.splice(0)));
      await validator.idle();
      return outcomes;
    },
    async waitForAttestations(peer) {
      await waitFor(() => peer.attestations.length > 0);
      return peer.attestations.splice(0);
    },
    async stop() {
      await validator.stop();
      await replayer.close();
      // A test may have stopped a cheating peer already.
      await Promise.all([client, ...peers, relay].map((n) => Promise.resolve().then(() => n.stop()).catch(() => undefined)));
    },
  };
}
