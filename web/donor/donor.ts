/**
 * A donor tab's life on the grid: join the relay as a libp2p peer, measure the device in the
 * engine worker, say hello to the coordinator, take the assigned layer range, fetch its pieces
 * from peers (web seed as fallback) into IndexedDB, load them into the engine, and serve them
 * as a pipeline stage. It serves its pieces to other peers and answers link probes all along.
 * Everything the visitor sees goes through `hooks` (web/donor/main.ts renders it).
 */
import { multiaddr } from '@multiformats/multiaddr';
import { createPeerNode, openDirectStream, webrtcAddrs } from '../../shared/grid/node.ts';
import { keepSpare } from '../../shared/grid/spare-streams.ts';
import { createIdleLinks } from '../../shared/grid/idle-links.ts';
import { median } from '../../shared/statistics.ts';
import type { PeerNode } from '../../shared/grid/node.ts';
import { openCoordinatorSession } from '../../shared/grid/coordinator-session.ts';
import type { CoordinatorSession } from '../../shared/grid/coordinator-session.ts';
import { PIECES_PROTOCOL, STAGE_PROTOCOL } from '../../shared/grid/protocol-ids.ts';
import type { DeviceSummary, FromCoordinator, ToCoordinator } from '../../shared/grid/protocol.ts';
import type { GridInfo } from '../../shared/grid/client.ts';
import { rtcConfiguration } from '../../shared/grid/ice.ts';
import { gridApi } from '../../shared/grid/grid-api.ts';
import { probePeer, serveProbe } from '../../shared/grid/probe.ts';
import { serveStage } from '../../shared/grid/stage-server.ts';
import { createAttestor } from '../../shared/grid/stage-attestor.ts';
import { createStepJournal } from '../../shared/trust/step-journal.ts';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromString } from '@libp2p/peer-id';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { formatEther, type EIP1193Provider } from 'viem';
import { stakeFromWallet, WalletStakeError } from './wallet-stake.ts';
import type { WalletStake } from './wallet-stake.ts';
import type { StageServer } from '../../shared/grid/stage-server.ts';
import { MANIFEST_FILE, parseManifest } from '../../shared/model/manifest.ts';
import { fetchPackageFiles } from '../../shared/model/package-fetch.ts';
import type { Manifest } from '../../shared/model/manifest.ts';
import { sameRange } from '../../shared/runtime/stage.ts';
import type { LayerRange } from '../../shared/runtime/stage.ts';
import { assembleFiles, filesForLayers, piecesForLayers } from '../../shared/swarm/package-pieces.ts';
import { servePieces } from '../../shared/swarm/piece-protocol.ts';
import { createSwarmFetcher } from '../../shared/swarm/swarm-fetcher.ts';
import type { SwarmFetcher } from '../../shared/swarm/swarm-fetcher.ts';
import type { ExecutionProvider } from '../../shared/engine/api.ts';
import type { PieceStore } from '../../shared/swarm/piece-store.ts';
import { startEngineWorker } from '../engine-client.ts';
import type { EngineWorker } from '../engine-client.ts';
import { createIndexedDbPieceStore } from '../piece-store.ts';
import type { DonorState, TrustState } from './view.ts';
import type { CampaignRunnerDeps } from './campaign-runner.ts';
import { createCampaignParticipation } from './campaign-participation.ts';
import type { CampaignParticipation } from './campaign-participation.ts';

export interface DonorOptions {
  /** the server's origin (the page's own by default) */
  serverUrl: string;
  /** force an execution provider instead of choosing by the device (?ep=wasm|webgpu) */
  executionProvider?: ExecutionProvider;
  /** the EVM address earnings go to (?payTo=0x...); default: an account this browser keeps */
  payTo?: string;
  /** the page's wallet (window.ethereum), read when the visitor stakes: extensions may inject it late (wallet-stake.ts) */
  wallet?: () => EIP1193Provider | undefined;
  /** the threads the engine computes with (?threads=N, or the visitor's choice on the page); default half the cores, at most 4 */
  threads?: number;
  /** the relay to join through (default: the one /api/info advertises); the server's own donors use its loopback address */
  relayAddrs?: string[];
  /** a benchmark campaign to run on the served layers between requests (?campaign=<id>, the campaign's join link) */
  campaign?: string;
  /** whether the visitor opted in to running the grid's benchmark campaigns (the donor page's checkbox; default off) */
  campaigns?: boolean;
}

/**
 * What the donor runs on: a browser tab's by default; a terminal donor (cli/donate-command.ts)
 * hands in Node's, and the test kit's faulty donor page (testkit/pages/faulty-donor/) cheating ones.
 */
export interface DonorDeps {
  /** the engine worker (default: the product's, web/engine-client.ts) */
  startEngine?: () => EngineWorker;
  /** where verified pieces are kept (default: IndexedDB, so a reload resumes its download) */
  openStore?: () => Promise<PieceStore & { close(): void }>;
  /** what peers are sent when they ask for a piece (default: the tab's own store) */
  servedStore?: (store: PieceStore) => PieceStore;
  /** the execution provider when the options name none (default: WebGPU, unless the adapter is a software one) */
  preferredProvider?: () => Promise<ExecutionProvider>;
  /** bytes offered for layers (default: half the device memory the browser reports, within the storage quota) */
  offeredMemory?: () => Promise<number>;
  /** the payout address when the options name none (default: an account this browser keeps) */
  payoutAccount?: () => string;
  /** test-only: while true, the donor serves but never answers for its requests (e2e/no-shows.test.ts) */
  withholdCommitments?: () => boolean;
  /** how a campaign result is posted (default: as signed); the test kit's cheating tab forges or repeats it */
  postCampaignResult?: CampaignRunnerDeps['post'];
}

export interface DonorHooks {
  update(state: Partial<DonorState>): void;
  throughput(atMs: number, tokensPerSecond: number): void;
  error(message: string): void;
}

/** Serving stats are sent to the coordinator and shown this often. */
const STATS_INTERVAL_MS = 1000;
/** Peers whose probe failed are probed again this often. */
const PROBE_RETRY_MS = 5000;
/** A lost link to a stage this tab hands frames on to is dialled again within this. */
const NEXT_HOPS_WARM_MS = 2000;
/** A link that carried nothing this long is closed, unless it joins this tab to a route neighbour or a client (idle-links.ts). */
const IDLE_LINK_MS = 6_000;
/** A link never worth keeping (a relayed handshake's, a second one to the same peer) is closed once idle this long. */
const SPARE_LINK_MS = NEXT_HOPS_WARM_MS;
/** While idle, stats are shown and sent on every this many ticks only. */
const IDLE_STATS_EVERY = 10;
/** The tab's ledger entry (stake, work, earnings) is fetched this often while serving. */
const LEDGER_POLL_MS = 5000;
/** Piece announcements are batched: one 'have' per this many ms while downloading. */
const HAVE_INTERVAL_MS = 250;

export interface Donor {
  readonly node: PeerNode;
  state(): DonorState;
  /** Stakes `amountEth` for this tab's payout address from the page's wallet; a WalletStakeError says why not. */
  stakeFromWallet(amountEth: string): Promise<WalletStake>;
  /** The visitor's choice to run the grid's benchmark campaigns (off stops the one under way). */
  setCampaignOptIn(on: boolean): void;
  /** Leaves the benchmark campaign under way; runs already posted count. */
  leaveCampaign(): void;
  stop(): Promise<void>;
}

/** A speed the handshake measured, or none: a zero or infinite one (a timer too coarse) says nothing. */
const measured = (gflops: number | undefined) => (gflops !== undefined && Number.isFinite(gflops) && gflops > 0 ? gflops : undefined);

/** Starts a donor; one that fails to start has released what it started (its engine, its node) before the error is thrown. */
export async function startDonor(options: DonorOptions, hooks: DonorHooks, deps: DonorDeps = {}): Promise<Donor> {
  const started: (() => unknown)[] = [];
  try {
    return await joinGrid(options, hooks, deps, (release) => void started.push(release));
  } catch (err) {
    for (const release of started.reverse()) await Promise.resolve(release()).catch(() => undefined);
    throw err;
  }
}

async function joinGrid(options: DonorOptions, hooks: DonorHooks, deps: DonorDeps, started: (release: () => unknown) => void): Promise<Donor> {
  const state: DonorState = { status: 'connecting', requestsServed: 0, tokensServed: 0, tokensPerSecond: 0, peers: 0 };
  const update = (patch: Partial<DonorState>) => {
    Object.assign(state, patch);
    hooks.update(patch);
  };
  const fail = (err: unknown) => {
    const message = `${(err as Error).name ?? 'Error'}: ${(err as Error).message ?? String(err)}`;
    update({ status: 'error' });
    hooks.error(message);
  };

  // The engine first: its threads are set before anything opens a session, and shown at once.
  const engine = (deps.startEngine ?? startEngineWorker)();
  started(() => engine.terminate());
  update({ threads: await engine.engine.threads(options.threads) });

  const base = options.serverUrl.replace(/\/$/, '');
  const readInfo = () => gridApi(base)<GridInfo>('/api/info');
  const advertised = await readInfo();
  const info: GridInfo = { ...advertised, relayAddrs: options.relayAddrs ?? advertised.relayAddrs };
  const offer = info.models[0];
  const packageUrl = new URL(offer.packageUrl, `${base}/`).href;
  const manifestText = new TextDecoder().decode(await fetchPackageFiles(packageUrl)(MANIFEST_FILE));
  const manifest: Manifest = await parseManifest(manifestText, `${packageUrl}${MANIFEST_FILE}`);
  const store = await (deps.openStore ?? createIndexedDbPieceStore)();
  started(() => store.close());

  // The tab's identity signs its commitments: the validator checks them against the peer id.
  const privateKey = await generateKeyPair('Ed25519');
  const node = await createPeerNode({ relayAddrs: info.relayAddrs, privateKey, rtcConfiguration: rtcConfiguration(info, readInfo) });
  started(() => node.stop());
  /** the benchmark campaigns the tab runs, once it serves (campaign-participation.ts) */
  let campaigns: CampaignParticipation | undefined;
  // A visitor who closes the tab says goodbye: its peer connections are closed as the page goes,
  // so its peers' SCTP transports close at once (far-end-close.ts) and the routes through it
  // recover now. Left to the browser, a closed page's peers heard nothing until a step's deadline.
  globalThis.addEventListener?.('pagehide', () => {
    campaigns?.pageClosing();
    coordinator?.stop();
    for (const connection of node.getConnections()) connection.abort(new Error('the donor page closed'));
  });
  const validator = peerIdFromString(multiaddr(info.relayAddrs[0]).getComponents().findLast((c) => c.name === 'p2p')!.value!);
  const journal = createStepJournal();
  const trust: TrustState = { committed: 0, challengedSteps: 0, proofBytes: 0, refused: 0 };
  update({ peerId: node.peerId.toString(), nLayers: manifest.config.nLayers });
  await servePieces(node, { store: deps.servedStore ? deps.servedStore(store) : store });
  await serveProbe(node);

  // Opened once the device is measured (below); nothing is sent before the hello there.
  let coordinator: CoordinatorSession | undefined;
  const send = (message: ToCoordinator) => coordinator?.send(message) ?? Promise.resolve();

  update({ status: 'benchmarking' });
  const executionProvider = options.executionProvider ?? (await (deps.preferredProvider ?? preferredProvider)());
  const handshake = await engine.engine.handshake({ layer: { config: manifest.config, dtype: manifest.dtype, executionProvider }, skipWebGpu: executionProvider !== 'webgpu', targetMs: 100 });
  const layer = handshake.layer && 'msPerLayerDecode' in handshake.layer ? handshake.layer : null;
  if (!layer) throw new Error(`the device benchmark could not run a layer: ${(handshake.layer as { unavailable?: string })?.unavailable ?? 'no result'}`);
  const device: DeviceSummary = {
    executionProvider,
    msPerLayer: layer.msPerLayerDecode,
    memoryBytes: await (deps.offeredMemory ?? offeredMemory)(),
    signature: handshake.signature,
    label: executionProvider === 'webgpu' && 'info' in handshake.webgpu ? describeAdapter(handshake.webgpu.info) : `${handshake.host.platform}, ${handshake.host.cores} cores (${executionProvider === 'cpu' ? 'native CPU' : 'WASM'})`,
    gflops: measured(executionProvider === 'webgpu' ? ('matmul' in handshake.webgpu ? handshake.webgpu.matmul.gflops : undefined) : handshake.wasm.matmul.gflops),
  };
  update({ device: { label: device.label, executionProvider, msPerLayer: device.msPerLayer } });

  /** the grid's other donors, what they hold and serve (the coordinator's latest list) */
  let peers: Extract<FromCoordinator, { type: 'peers' }>['peers'] = [];
  const probed = new Set<string>();
  let fetcher: SwarmFetcher | null = null;
  let stage: StageServer | null = null;
  let assignment: AbortController | null = null;
  /** the range being fetched, loaded or served: an assignment of it again changes nothing */
  let assigned: LayerRange | undefined;
  /** when the stage last stepped a request: a campaign run waits for a quiet moment */
  let lastServedAt = 0;
  // A tab on WebGPU measures WebGPU; one on WASM says why it is not on WebGPU.
  const providerReason =
    executionProvider === 'webgpu' ? 'a tab measures the provider it serves on (a tab opened with ?ep=wasm measures WASM)' : options.executionProvider ? `the page was opened with ?ep=${options.executionProvider}` : 'this browser has no WebGPU adapter, or only a software one, slower than WASM';
  campaigns = createCampaignParticipation(
    { serverUrl: options.serverUrl, joinLink: options.campaign, optedIn: options.campaigns ?? false, peerId: node.peerId.toString(), device, dim: manifest.config.dim, model: { id: manifest.id, name: manifest.name }, providerReason },
    {
      engine: { step: (frame) => engine.stepTransfer(frame), end: (id) => engine.engine.end(id) },
      privateKey,
      lastServedAt: () => lastServedAt,
      progress: (p) => update({ campaign: p }),
      post: deps.postCampaignResult,
    },
  );

  const announceHave = async () => send({ type: 'have', packageId: manifest.id, pieces: [...(await store.keys(manifest.id))] });

  async function serveAssignment(layers: LayerRange, signal: AbortSignal): Promise<void> {
    await stage?.stop();
    stage = null;
    update({ status: 'downloading', layers });
    fetcher = createSwarmFetcher(
      { manifest, packageId: manifest.id, needed: piecesForLayers(manifest, layers), webSeedUrl: packageUrl },
      { store, fetch: (...args) => fetch(...args), openPieceStream: async (peer, s) => (await openDirectStream(node, peer, PIECES_PROTOCOL, s)).stream },
    );
    fetcher.setPeers(peers);
    let lastHave = 0;
    fetcher.onProgress((progress) => {
      update({ download: { ...progress, dropped: [...progress.dropped] } });
      if (performance.now() - lastHave > HAVE_INTERVAL_MS) {
        lastHave = performance.now();
        void announceHave();
      }
    });
    const report = await fetcher.run(signal);
    update({ download: { ...report, dropped: [...report.dropped] } });
    await announceHave();
    update({ status: 'loading' });
    const files = await assembleFiles(manifest, store, filesForLayers(manifest, layers));
    await engine.engine.load({ modelId: manifest.id, layers, source: { kind: 'bytes', manifest: manifestText, files }, executionProviders: [executionProvider] });
    signal.throwIfAborted();
    const attestor = createAttestor({ packageId: manifest.id, layers }, { node, privateKey, journal, validator });
    // After a request, off its path: commit, answer the challenge, show what the validator said.
    const answerFor = (requestId: string) =>
      attestor.attest(requestId).then(
        (outcome) => Object.assign(trust, { committed: trust.committed + 1, challengedSteps: trust.challengedSteps + outcome.challenged.length, proofBytes: trust.proofBytes + outcome.proofBytes }),
        (err: Error) => Object.assign(trust, { refused: trust.refused + 1, lastRefusal: `${err.name}: ${err.message}` }),
      ).then(() => update({ trust: { ...trust } }));
    stage = await serveStage(node, { packageId: manifest.id, layers }, {
      engine: {
        step: (frame) => {
          lastServedAt = performance.now();
          return engine.stepTransfer(frame);
        },
        end: (id) => engine.engine.end(id),
      },
      journal,
      privateKey,
      onRequestEnd: (id) => {
        if (deps.withholdCommitments?.()) return journal.forget(id);
        void answerFor(id);
      },
    });
    await send({ type: 'serving', packageId: manifest.id, layers });
    update({ status: 'serving' });
    campaigns?.serving(layers);
  }

  let probing = false;
  async function probeNewPeers(): Promise<void> {
    if (probing) return;
    probing = true;
    try {
      await probeUnmeasured();
    } finally {
      probing = false;
    }
  }

  async function probeUnmeasured(): Promise<void> {
    const results: Record<string, { rttMs: number; throughputMBps?: number }> = {};
    const me = node.peerId.toString();
    for (const peer of peers) {
      // One probe per pair (the coordinator reads RTTs both ways): the lower peer id measures,
      // so two tabs introduced at once do not dial each other at the same moment.
      if (probed.has(peer.peerId) || peer.peerId < me) continue;
      probed.add(peer.peerId);
      try {
        results[peer.peerId] = await probePeer(node, peer);
      } catch {
        // Tried again by the next probe round (PROBE_RETRY_MS); until then no measurement.
        probed.delete(peer.peerId);
      }
    }
    if (Object.keys(results).length > 0) await send({ type: 'rtt', peers: results });
  }

  /** The range this tab serves now (none while it fetches or loads one). */
  const served = () => (state.status === 'serving' ? state.layers : undefined);

  /**
   * Keeps a direct link open to every stage serving the layers after this tab's, with a spare
   * stage stream on it: whichever of them a route (or a swap onto a standby) picks, the first
   * frame waits for neither a WebRTC handshake nor a stream's negotiation. Only the upstream tab
   * dials, so two tabs never dial each other at once.
   */
  function warmNextHops(): void {
    const mine = served();
    if (!mine) return;
    for (const peer of peers) if (peer.serving?.start === mine.end) keepSpare(node, peer, STAGE_PROTOCOL);
  }

  /**
   * Whether an idle direct link to this peer is kept: while the tab serves, those to the tabs a
   * route may hand it frames from or to (their ranges end where this tab's starts, or start where
   * it ends: the warm standbys among them) and to peers that are not tabs (clients, whose links
   * are theirs to end). Before the tab serves, every link is kept.
   */
  function neededLink(peerId: string): boolean {
    const mine = served();
    const peer = peers.find((p) => p.peerId === peerId);
    if (!mine || !peer) return true;
    return peer.serving !== undefined && (peer.serving.start === mine.end || peer.serving.end === mine.start);
  }
  const idleLinks = createIdleLinks({ idleMs: IDLE_LINK_MS, spareIdleMs: SPARE_LINK_MS }, { node, needed: neededLink });

  function onMessage(message: FromCoordinator): void {
    if (message.type === 'assign') {
      // The range this tab already fetches (assigned again when it rejoined while downloading it).
      if (assigned && sameRange(assigned, message.layers)) return;
      assigned = message.layers;
      assignment?.abort();
      assignment = new AbortController();
      serveAssignment(message.layers, assignment.signal).catch((err) => {
        if ((err as Error).name !== 'AbortError') fail(err);
      });
    } else if (message.type === 'peers') {
      peers = message.peers;
      update({ peers: peers.length });
      fetcher?.setPeers(peers);
      void probeNewPeers();
      warmNextHops();
    } else if (message.type === 'verdict') {
      if (message.verdict.peerId !== node.peerId.toString()) return;
      trust.verdict = message.verdict.reason;
      update({ trust: { ...trust }, status: 'error' });
      hooks.error(`the validator found this tab serving wrong results and banned it: ${message.verdict.reason}`);
    } else if (message.type === 'error') {
      hooks.error(`the coordinator refused: ${message.name}: ${message.message}`);
    }
  }

  // The coordinator session rides the WebSocket connection to the relay, and is opened again
  // when that drops (coordinator-session.ts). It is opened only now, with the device measured:
  // the coordinator closes a stream that does not say hello at once.
  trust.payTo = options.payTo ?? (deps.payoutAccount ?? payoutAccount)();
  update({ trust: { ...trust } });
  coordinator = await openCoordinatorSession({ node, relayAddr: multiaddr(info.relayAddrs[0]) }, {
    hello: () => ({ type: 'hello', role: 'donor', addrs: webrtcAddrs(node), device, payTo: trust.payTo, ...(state.status === 'serving' && { layers: state.layers }) }),
    joined: async () => {
      // A new session's registry record knows no RTTs: measured again and sent.
      probed.clear();
      await announceHave();
    },
    message: onMessage,
    connection: (c) => update({ coordinator: c }),
    ended: fail,
  });
  let lastTokens = 0;
  let lastAt = performance.now();
  // What the tab costs: the share of wall time its engine spent computing since the last look.
  let lastUsage = { computeMs: 0, at: performance.now() };
  const showCost = async () => {
    const usage = await engine.engine.usage();
    const at = performance.now();
    const computePercent = at > lastUsage.at ? Math.min(100, (100 * (usage.computeMs - lastUsage.computeMs)) / (at - lastUsage.at)) : 0;
    lastUsage = { computeMs: usage.computeMs, at };
    update({ cost: { computePercent, memoryBytes: usage.memoryBytes } });
  };
  // Probes that failed (a peer busy benchmarking, two dials crossing) are tried again.
  const probeTimer = setInterval(() => void probeNewPeers(), PROBE_RETRY_MS);
  const warmTimer = setInterval(() => {
    warmNextHops();
    idleLinks.sweep();
  }, NEXT_HOPS_WARM_MS);
  let lastRequests = -1;
  let idleTicks = 0;
  const statsTimer = setInterval(() => {
    if (!stage) return;
    const s = stage.stats();
    // A new assignment runs a new stage server, whose counts start again from zero: a rate
    // across that would be negative (and the coordinator refuses a negative rate).
    if (s.tokensServed < lastTokens) lastTokens = 0;
    // An idle tab redraws and reports only now and then: on a shared machine its timer work
    // is taken from the tabs that compute.
    const idle = s.tokensServed === lastTokens && s.requestsServed === lastRequests;
    if (idle && ++idleTicks % IDLE_STATS_EVERY !== 1) return;
    if (!idle) idleTicks = 0;
    lastRequests = s.requestsServed;
    void showCost();
    const at = performance.now();
    // Two ticks in the same millisecond (a throttled tab catching up) would make it NaN, which JSON sends as null.
    const tokensPerSecond = at > lastAt ? ((s.tokensServed - lastTokens) * 1000) / (at - lastAt) : 0;
    lastTokens = s.tokensServed;
    lastAt = at;
    update({ requestsServed: s.requestsServed, tokensServed: s.tokensServed, tokensPerSecond });
    hooks.throughput(Date.now(), tokensPerSecond);
    const layers = state.layers ? state.layers.end - state.layers.start : 0;
    const decodeMs = median(s.recentDecodeMs);
    const msPerLayer = decodeMs !== undefined && layers > 0 ? decodeMs / layers : undefined;
    if (msPerLayer !== undefined) update({ device: { ...state.device!, msPerLayer } });
    void send({ type: 'stats', stats: { requestsServed: s.requestsServed, tokensServed: s.tokensServed, tokensPerSecond, msPerLayer } });
  }, STATS_INTERVAL_MS);

  // What the grid's ledger says this tab has earned.
  const readLedger = async () => {
    const response = await fetch(`${base}/v1/ledger/peers/${node.peerId.toString()}`).catch(() => undefined);
    if (!response?.ok) return;
    const entry = (await response.json()) as { stake?: string; bond?: string; verifiedWork?: number; pending?: string; paid?: string; forfeited?: string };
    Object.assign(trust, { stake: entry.stake, bond: entry.bond, verifiedWork: entry.verifiedWork, pending: entry.pending, paid: entry.paid, forfeited: entry.forfeited });
    update({ trust: { ...trust } });
  };
  // A grid without a chain keeps no ledger, so nothing is polled (each tab's poll would be a
  // request answered 404 every few seconds).
  const ledgerTimer = info.settlement
    ? setInterval(() => {
        if (state.status === 'serving') void readLedger();
      }, LEDGER_POLL_MS)
    : undefined;

  return {
    node,
    state: () => ({ ...state }),
    async stakeFromWallet(amountEth) {
      if (!info.settlement) throw new WalletStakeError('this grid runs without a chain: there is nothing to stake on');
      try {
        const staked = await stakeFromWallet({ settlement: info.settlement, payTo: trust.payTo!, amountEth }, { provider: options.wallet?.() });
        trust.walletStake = `${formatEther(staked.amount)} ETH from ${staked.from} (transaction ${staked.txHash})`;
        update({ trust: { ...trust } });
        await readLedger();
        return staked;
      } catch (err) {
        hooks.error(`${(err as Error).name}: ${(err as Error).message}`);
        throw err;
      }
    },
    setCampaignOptIn: (on) => campaigns?.optIn(on),
    leaveCampaign: () => campaigns?.leave(),
    async stop() {
      campaigns?.stop();
      clearInterval(ledgerTimer);
      clearInterval(statsTimer);
      clearInterval(probeTimer);
      clearInterval(warmTimer);
      coordinator?.stop();
      assignment?.abort();
      await stage?.stop();
      engine.terminate();
      await node.stop();
      store.close();
    },
  };
}

/**
 * WebGPU first, unless the adapter is a software rasterizer (SwiftShader, or one the browser
 * calls a fallback adapter): those run on the CPU and are slower than onnxruntime's WASM kernels.
 */
async function preferredProvider(): Promise<ExecutionProvider> {
  const adapter = await navigator.gpu?.requestAdapter().catch(() => null);
  if (!adapter) return 'wasm';
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  return info.isFallbackAdapter || info.architecture === 'swiftshader' ? 'wasm' : 'webgpu';
}

/** Bytes offered for layers: half of what the browser says the device has (at most 8 GiB reported), within the storage quota left. */
async function offeredMemory(): Promise<number> {
  const deviceGiB = (navigator as Navigator & { deviceMemory?: number }).deviceMemory ?? 4;
  const estimate = await navigator.storage?.estimate?.().catch(() => undefined);
  const storageLeft = estimate?.quota != null ? estimate.quota - (estimate.usage ?? 0) : Infinity;
  return Math.max(0, Math.min((deviceGiB * 2 ** 30) / 2, storageLeft));
}

function describeAdapter(info: { vendor?: string; architecture?: string }): string {
  return [info.vendor, info.architecture].filter(Boolean).join(' ') || 'WebGPU adapter';
}

/**
 * The address a visitor's earnings go to when they name none: an account this browser makes
 * once and keeps in localStorage, so earnings accrue across reloads. Its key is the visitor's
 * to export and withdraw with; a visitor with a wallet passes ?payTo= instead.
 */
function payoutAccount(): string {
  const KEY = 'infermesh.payoutKey';
  let key = localStorage.getItem(KEY) as `0x${string}` | null;
  if (!key) {
    key = generatePrivateKey();
    localStorage.setItem(KEY, key);
  }
  return privateKeyToAccount(key).address;
}
