/**
 * The signaling server as one process: the libp2p relay (relay.ts), the coordinator
 * (coordinator/), and the HTTP server (http/) with the built web app, onnxruntime-web's files,
 * the model package (the swarm's web seed), the grid API (/api/info, /api/route, /api/peers)
 * and the OpenAI-compatible gateway (/v1), which answers through the grid with a grid client of
 * its own (onnxruntime-node for the head). With settlement, /api/info says how clients pay and
 * /api/vouchers takes SDK clients' vouchers. State goes to node:sqlite when a store is given.
 */
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { ORT_ASSET_PATH } from '../shared/engine/api.ts';
import type { InfermeshError } from '../shared/errors.ts';
import { MANIFEST_FILE, parseManifest, sha256Hex } from '../shared/model/manifest.ts';
import type { Manifest } from '../shared/model/manifest.ts';
import { connectGrid, GridApiError, ROUTE_ERRORS } from '../shared/grid/client.ts';
import type { GridClient, GridInfo, RequestObserver } from '../shared/grid/client.ts';
import type { OrtModule } from '../shared/runtime/ort.ts';
import type { ChatCompletionCreateParams, ChatCompletionsApi, CompletionCreateParams, CompletionsApi, OpenAIApi, RequestOptions } from '../shared/openai/types.ts';
import { sameRange } from '../shared/runtime/stage.ts';
import { DEFAULT_WEB_DIR } from './config.ts';
import { startRelay } from './relay.ts';
import { reachableBeyondThisMachine, relayMultiaddr } from './public-url.ts';
import { iceServersFor } from './ice-servers.ts';
import type { IceConfig } from './ice-servers.ts';
import type { RelayNode } from './relay.ts';
import { startCoordinator } from './coordinator/coordinator.ts';
import type { Coordinator, CoordinatorEvents } from './coordinator/coordinator.ts';
import { NoRouteError } from './coordinator/registry.ts';
import { peersView } from './coordinator/peers-view.ts';
import { jsonResponse, startHttpServer } from './http/server.ts';
import type { ApiHandler, HttpServer } from './http/server.ts';
import { ServiceUnavailableError } from './http/errors.ts';
import { parseRouteQuery } from './http/route-query.ts';
import { createOpenAIGateway } from './http/openai-gateway.ts';
import type { GatewayKeys } from './api-keys/gateway-keys.ts';
import type { GridStore } from './store.ts';
import { openCampaignStore } from './campaigns/campaign-store.ts';
import type { CampaignStore } from './campaigns/campaign-store.ts';
import { campaignHandlers } from './campaigns/campaign-api.ts';
import { checkCampaignRun } from './campaigns/campaign-check.ts';
import { thresholdsFor } from '../shared/trust/fingerprint.ts';
import { startReplayerThread } from './trust/replayer-thread.ts';
import { ledgerHandlers } from './settle/ledger-api.ts';
import { voucherHandlers } from './settle/voucher-api.ts';
import type { GridSettlement } from './settle/grid-settlement.ts';
import { startValidator, verdictReason } from './trust/validator.ts';
import { createRouteGrants } from './coordinator/route-grants.ts';
import type { Validator, Verdict } from './trust/validator.ts';
import { createNoShows } from './trust/no-shows.ts';
import type { NoShowPolicy } from './trust/no-shows.ts';

/** onnxruntime-web's .wasm and loader files, served at ORT_ASSET_PATH for the engine workers. */
const ORT_DIST_DIR = fileURLToPath(new URL('../node_modules/onnxruntime-web/dist/', import.meta.url));

export interface GridServerOptions {
  host: string;
  /** the one port of pages, packages, API and relay (its WebSocket upgrades at '/') */
  port: number;
  /** where the grid is reached from outside (public-url.ts): what the relay is advertised at; default the listen address */
  publicUrl?: URL;
  /** PEM certificate and key (tls-files.ts): serve https and wss */
  tls?: { cert: string; key: string };
  /** STUN/TURN servers handed to peers in /api/info (ice-servers.ts) */
  ice?: IceConfig;
  /** the model package directory the grid serves */
  modelDir: string;
  /** the built web app (vite build) */
  webDir?: string;
  /** more static folders by URL prefix, beside the app (the e2e tests serve the test pages under /test/) */
  staticRoutes?: Record<string, string>;
  maxLayersPerNode?: number;
  /** what a stage's no-shows cost it, and when (trust/no-shows.ts); default DEFAULT_NO_SHOW_POLICY */
  noShows?: Partial<NoShowPolicy>;
}

export interface GridServer {
  /** the HTTP origin with a trailing slash: open `${url}donor/` to donate */
  url: string;
  /** the public URL when one was given, else `url` */
  publicUrl: string;
  manifest: Manifest;
  relay: RelayNode;
  coordinator: Coordinator;
  validator: Validator;
  http: HttpServer;
  /** the server's own grid client (the OpenAI gateway's), connected on first use */
  client(): Promise<GridClient>;
  close(): Promise<void>;
}

/** Donors join within seconds of opening the page; a client told to wait this long may find a route. */
const NO_ROUTE_RETRY_AFTER_SECONDS = 5;

/** The grid cannot answer yet: no chain of serving stages covers the model (503, Retry-After). */
class NoRouteHttpError extends ServiceUnavailableError {
  override name = 'NoRouteHttpError';
  constructor(message: string, cause?: unknown) {
    super(message, { code: 'no_route', retryAfterSeconds: NO_ROUTE_RETRY_AFTER_SECONDS, cause });
  }
}

/**
 * The gateway's own grid client could not connect (its first request, or after a failure): a
 * link the server makes to itself over loopback, cut mid-handshake (seen when a flood of other
 * loopback connections hits the relay at that moment). Its next request connects again.
 */
class GatewayConnectError extends ServiceUnavailableError {
  override name = 'GatewayConnectError';
  constructor(cause: unknown) {
    super(`the server's grid client could not connect to its relay (${(cause as Error)?.name ?? 'Error'}: ${(cause as Error)?.message ?? String(cause)}); retry`, { code: 'grid_unreachable', retryAfterSeconds: 1, cause });
  }
}

/**
 * A generation that failed for want of a grid, not through a fault of its request: no route
 * (the coordinator's, or the one the grid client asked for), or a route whose stages failed on
 * every attempt. Anything else is passed on as it is.
 */
function unavailable(err: unknown): unknown {
  const name = (err as Error)?.name;
  if (name === 'NoRouteError' || name === 'LayersUncoveredError' || (err instanceof GridApiError && err.code === 'no_route') || ROUTE_ERRORS.includes(name)) {
    // The short message: the server's own /api/route URL (the client's source) is no news to the caller.
    return new NoRouteHttpError(`the grid cannot serve this request now: ${(err as InfermeshError).shortMessage ?? (err as Error).message}`, err);
  }
  return err;
}

/** A stream whose failures for want of a grid are 503s like the others (sent as its last event). */
async function* mapUnavailable<T>(events: AsyncIterable<T>): AsyncGenerator<T> {
  try {
    yield* events;
  } catch (err) {
    throw unavailable(err);
  }
}

/** The coordinator's events written to the store: peers seen, their stats, assignments. */
function storeEvents(store: GridStore, packageId: string): CoordinatorEvents {
  return {
    peerSeen(peer) {
      store.peerSeen({ peerId: peer.peerId, role: peer.role, device: peer.device });
      if (peer.stats) store.recordStats(peer.peerId, peer.stats);
    },
    peerLeft: (peerId) => void store.endAssignments(peerId, packageId),
    assigned(peerId, layers) {
      store.endAssignments(peerId, packageId);
      store.assign({ peerId, packageId, layers });
    },
  };
}

/**
 * What SDK clients need to pay. The RPC URL is told only for the local anvil: an operator's
 * `--rpc-url` often carries an API key.
 */
function paymentInfo(settlement: GridSettlement): NonNullable<GridInfo['settlement']> {
  const { chainId, contract, pricePerLayerToken, rpcUrl, local } = settlement.chain;
  return { chainId, contract, pricePerLayerToken, ...(local && { rpcUrl }) };
}

export interface GridServerDeps {
  store?: GridStore;
  /** the chain side: stake, vouchers, payouts, slashing (signaling-server/settle/grid-settlement.ts) */
  settlement?: GridSettlement;
  /** who may call the OpenAI gateway, and how much (api-keys/gateway-keys.ts); default: anyone */
  keys?: GatewayKeys;
  /** benchmark campaigns and their runs (campaigns/campaign-store.ts); default: kept in memory, closed with the server */
  campaigns?: CampaignStore;
  log?: (line: string) => void;
}

export async function startGridServer(options: GridServerOptions, deps: GridServerDeps = {}): Promise<GridServer> {
  const manifest = await parseManifest(await readFile(join(options.modelDir, MANIFEST_FILE), 'utf8'), join(options.modelDir, MANIFEST_FILE));
  // The relay's own listener serves loopback only: peers reach it on the HTTP port (acceptUpgrade below).
  const relay = await startRelay({ host: '127.0.0.1', port: 0 });
  const packagePath = `/packages/${manifest.id}/`;
  const { store, settlement } = deps;
  const campaigns = deps.campaigns ?? openCampaignStore(':memory:');
  const log = deps.log ?? (() => {});
  const stored = store && storeEvents(store, manifest.id);
  /** When the validator last turned each connected stage away as busy (trust/no-shows.ts excuses it). */
  const turnedAway = new Map<string, number>();
  const coordinator = await startCoordinator(
    { manifest, packageUrl: packagePath, maxLayersPerNode: options.maxLayersPerNode, bans: store?.bans },
    {
      node: relay,
      logError: (err) => log(`coordinator: ${(err as Error)?.stack ?? String(err)}`),
      events: {
        ...stored,
        assigned(peerId, layers) {
          stored?.assigned?.(peerId, layers);
          log(`coordinator: ${peerId} assigned layers ${layers.start}..${layers.end - 1}`);
        },
        peerLeft(peerId) {
          stored?.peerLeft?.(peerId);
          // A stage that left is excused anyway (no-shows.ts): what the validator turned it away for no longer matters.
          turnedAway.delete(peerId);
          // Its bond starts back to the operator, unless another tab paying to the same address still serves.
          const address = settlement?.payoutAddress(peerId);
          if (address && ![...coordinator.registry.peers.keys()].some((id) => id !== peerId && settlement?.payoutAddress(id) === address)) settlement?.donorLeft(peerId);
          log(`coordinator: ${peerId} left`);
        },
        payTo: (peerId, address) =>
          void settlement?.donorJoined(peerId, address, { deviceSignature: coordinator.registry.peers.get(peerId)?.device?.signature, resemblesBanned: coordinator.registry.resemblesBanned(peerId) }).catch((err: Error) => log(`settlement: no bond for ${peerId}: ${err.message}`)),
      },
    },
  );

  // Stages that served a request and did not answer for it while connected (trust/no-shows.ts).
  const missed = new Map<string, number[]>(); // without a store: no-show times per stage, in memory
  const noShows = createNoShows(options.noShows ?? {}, {
    connected: (peerId) => coordinator.registry.peers.has(peerId),
    committedTo: (peerId, requestId) => validator.committedTo(peerId, requestId),
    turnedAway: (peerId, since) => (turnedAway.get(peerId) ?? 0) >= since,
    record: (n) => (store ? store.recordNoShow(n) : missed.set(n.peerId, [...(missed.get(n.peerId) ?? []), Date.now()])),
    count: (peerId, since) => (store ? store.noShows(peerId, since) : (missed.get(peerId) ?? []).filter((t) => t >= since).length),
    forfeit: async (peerId) => settlement?.forfeit(peerId) ?? 0n,
    suspend: (peerId) => coordinator.registry.suspend(peerId),
    resume: (peerId) => coordinator.registry.resume(peerId),
    ban: (peerId, reason) =>
      coordinator.banish({ peerId, requestId: '', layers: coordinator.registry.peers.get(peerId)?.serving ?? { start: 0, end: 0 }, reason, evidenceHash: '' }),
    log,
  });

  // The validator runs on the relay node: stages reach it over the WebSocket connection they already have.
  const replayer = startReplayerThread({ dir: options.modelDir, manifest });
  const grants = createRouteGrants();
  const validator = await startValidator({ manifest }, {
    node: relay,
    replayer,
    routedClient: grants.granted,
    backlog: store,
    // A look-alike of a banned device is re-measured: every step checked until it earns trust (trust/device-profile.ts).
    reputation: store && ((peerId) => ({ ...store.reputation(peerId), resemblesBanned: coordinator.registry.resemblesBanned(peerId) })),
    onVerdict: (verdict) => void judged(verdict).catch(() => undefined),
    onRefusal: (refusal) => {
      if (refusal.name === 'ValidatorBusyError') turnedAway.set(refusal.peerId, Date.now());
      store?.recordRefusal({ ...refusal, requestId: refusal.requestId ?? null });
    },
    onMissedReveal: (peerId, requestId) => void noShows.noShow(peerId, requestId, 'reveal'),
    logError: (err) => log(`validator: ${(err as Error)?.stack ?? String(err)}`),
  });
  /**
   * A verdict is recorded; honest work on a paid request earns a receipt; a failed verdict
   * slashes the stage's stake, bans it and its device, and re-places its layers.
   */
  async function judged(verdict: Verdict): Promise<void> {
    const evidenceHash = await sha256Hex(verdict.evidence);
    store?.recordVerdict({ ...verdict, evidenceHash });
    const layers = verdict.layers.end - verdict.layers.start;
    if (verdict.ok) return settlement?.workVerified({ peerId: verdict.peerId, requestId: verdict.requestId, layers, tokens: verdict.tokens });
    const slashed = await settlement?.slash(verdict.peerId, `0x${evidenceHash}`).catch((err: Error) => {
      log(`settlement: could not slash ${verdict.peerId}: ${err.message}`);
      return undefined;
    });
    log(`validator: ${verdict.peerId} failed its check on request ${verdict.requestId} and is banned: ${verdictReason(verdict)}`);
    coordinator.banish({ peerId: verdict.peerId, requestId: verdict.requestId, layers: verdict.layers, reason: verdictReason(verdict), evidenceHash, slashTx: slashed?.txHash });
  }

  let client: Promise<GridClient> | null = null;
  /** /api/info's ICE servers, with fresh TURN credentials each time; nothing when none are set. */
  const iceInfo = (): Pick<GridInfo, 'iceServers' | 'iceServersValidUntil'> => {
    if (!options.ice || options.ice.stun.length + options.ice.turn.length === 0) return {};
    const { iceServers, validUntil } = iceServersFor(options.ice);
    return { iceServers, ...(validUntil !== undefined && { iceServersValidUntil: validUntil }) };
  };
  /** Reachable beyond this machine: /api/peers gives the public view (coordinator/peers-view.ts). */
  const exposed = reachableBeyondThisMachine(options.host, options.publicUrl);
  const api: ApiHandler[] = [
    {
      method: 'GET',
      path: '/api/info',
      handle: () => jsonResponse({ relayAddrs: relay.getMultiaddrs().map(String), models: [coordinator.offer], ...iceInfo(), ...(settlement && { settlement: paymentInfo(settlement) }) } satisfies GridInfo),
    },
    {
      method: 'GET',
      path: '/api/route',
      handle: (req) => {
        const { client, avoid } = parseRouteQuery(req.url.searchParams, manifest.id);
        try {
          const route = coordinator.registry.route(client, avoid);
          if (client && route.hops.length > 0) {
            // A standby for the first hop may become the client's first stage mid-request.
            const first = route.hops[0].layers;
            for (const hop of [route.hops[0], ...route.standbys.filter((s) => sameRange(s.layers, first))]) grants.grant(client, hop.peerId);
          }
          return jsonResponse(route);
        } catch (err) {
          if (err instanceof NoRouteError) throw new NoRouteHttpError(err.message);
          throw err;
        }
      },
    },
    {
      method: 'GET',
      path: '/api/peers',
      handle: () => jsonResponse(peersView(coordinator.registry.coverage(), coordinator.registry.peers.values(), { full: !exposed })),
    },
    ...(settlement ? [...ledgerHandlers(settlement, store), ...voucherHandlers(settlement)] : []),
    ...campaignHandlers({
      store: campaigns,
      packages: () => [{ id: manifest.id, name: manifest.name, dtype: manifest.dtype }],
      device: (peerId) => {
        const peer = coordinator.registry.peers.get(peerId);
        // The handshake, or what the tab served at since when that was faster.
        return peer?.device && { ...peer.device, msPerLayer: Math.min(peer.device.msPerLayer, peer.stats?.msPerLayer || Infinity) };
      },
      origin: () => publicUrl.href,
      // Creating and stopping campaigns take the gateway's keys where it requires them.
      admit: deps.keys && ((headers) => void deps.keys!.admit(headers)),
      check: (run, spec) => checkCampaignRun(run, spec, { replayer, dim: manifest.config.dim, thresholds: thresholdsFor(manifest.dtype) }),
      log,
    }),
    ...createOpenAIGateway({
      models: () => [{ id: manifest.id, name: manifest.name, contextLength: manifest.config.maxSeqLen }],
      // The gateway answers through the grid like any SDK client would.
      apiFor: (id) => (id === manifest.id || id === manifest.name ? lazyApi() : undefined),
      keys: deps.keys,
    }),
  ];
  const http = await startHttpServer({
    host: options.host,
    port: options.port,
    routes: { ...options.staticRoutes, '/': options.webDir ?? DEFAULT_WEB_DIR, [ORT_ASSET_PATH]: ORT_DIST_DIR, [packagePath]: options.modelDir },
    api,
    upgrades: { '/': relay.acceptUpgrade },
    tls: options.tls,
  });
  // The server's own client dials the relay's loopback listener: neither the public URL (a proxy it may not reach) nor its own certificate is in the way.
  const localRelay = relay.getMultiaddrs().map(String);
  // One origin: the relay is advertised where the pages are, so a remote tab dials what it loaded.
  const publicUrl = options.publicUrl ?? new URL(http.url);
  relay.announce([relayMultiaddr(publicUrl)]);

  // The gateway's requests: recorded, and paid for with a voucher when settlement runs.
  const observer: RequestObserver = {
    started: (r) => store?.requestStarted({ ...r, packageId: manifest.id }),
    ended: (r) => {
      store?.requestEnded({ requestId: r.requestId, completionTokens: r.completionTokens, status: r.status, error: r.error });
      if (r.answeredBy) noShows.expectCommitments(r.answeredBy.id, r.answeredBy.stages);
      void settlement?.gatewayRequest(r.stageRequestIds, r.promptTokens + r.completionTokens, manifest.config.nLayers).catch((err: Error) => log(`settlement: the gateway's voucher failed: ${err.message}`));
    },
  };

  const connect = () => (client ??= connectGrid({ url: http.localUrl, model: manifest.id, relayAddrs: localRelay }, { ort: ort as unknown as OrtModule, observer }).catch((err) => {
    client = null;
    throw new GatewayConnectError(err);
  }));
  /** The OpenAI API of the server's grid client, connected when a request first needs it. */
  function lazyApi(): OpenAIApi {
    // The overloads only narrow the result by `stream`; one implementation serves them all.
    const chat = (params: ChatCompletionCreateParams, opts?: RequestOptions) => served(() => connect().then((c) => c.chat.completions.create(params, opts)));
    const text = (params: CompletionCreateParams, opts?: RequestOptions) => served(() => connect().then((c) => c.completions.create(params, opts)));
    return { modelId: manifest.id, chat: { completions: { create: chat as ChatCompletionsApi['create'] } }, completions: { create: text as CompletionsApi['create'] } };
  }

  /**
   * A create() whose grid failures are 503s. A request is checked before anything runs, so a
   * bad one is a 400 even while no donor serves; a stream, which generates only as it is read,
   * is then refused at once if no route exists, rather than after its 200 went out.
   */
  async function served<T extends object>(create: () => Promise<T>): Promise<T> {
    let result: T;
    try {
      result = await create();
    } catch (err) {
      throw unavailable(err);
    }
    if (!(Symbol.asyncIterator in result)) return result;
    const stream = result as T & AsyncIterable<unknown>;
    try {
      coordinator.registry.route();
    } catch (err) {
      await (stream as unknown as AsyncGenerator).return?.(undefined);
      throw unavailable(err);
    }
    return mapUnavailable(stream) as unknown as T;
  }

  return {
    url: http.url,
    publicUrl: publicUrl.href,
    manifest,
    relay,
    coordinator,
    validator,
    http,
    client: connect,
    async close() {
      const c = await client?.catch(() => null);
      await c?.close();
      noShows.stop();
      await validator.stop().catch(() => undefined);
      await replayer.close();
      await coordinator.stop().catch(() => undefined);
      await http.close();
      await relay.stop();
      if (!deps.campaigns) campaigns.close();

    },
  };
}
