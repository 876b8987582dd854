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
import { MANIFEST_FILE, parseManifest, sha256Hex } from '../shared/model/manifest.ts';
import type { Manifest } from '../shared/model/manifest.ts';
import { connectGrid } from '../shared/grid/client.ts';
import type { GridClient, GridInfo, RequestObserver } from '../shared/grid/client.ts';
import type { OrtModule } from '../shared/runtime/ort.ts';
import type { ChatCompletionCreateParams, ChatCompletionsApi, CompletionCreateParams, CompletionsApi, OpenAIApi, RequestOptions } from '../shared/openai/types.ts';
import { DEFAULT_WEB_DIR } from './config.ts';
import { startRelay } from './relay.ts';
import type { RelayNode } from './relay.ts';
import { startCoordinator } from './coordinator/coordinator.ts';
import type { Coordinator, CoordinatorEvents } from './coordinator/coordinator.ts';
import { NoRouteError } from './coordinator/registry.ts';
import { jsonResponse, startHttpServer } from './http/server.ts';
import type { ApiHandler, HttpServer } from './http/server.ts';
import { HttpError } from './http/errors.ts';
import { createOpenAIGateway } from './http/openai-gateway.ts';
import type { GridStore } from './store.ts';
import { startReplayerThread } from './trust/replayer-thread.ts';
import { ledgerHandlers } from './settle/ledger-api.ts';
import { voucherHandlers } from './settle/voucher-api.ts';
import type { GridSettlement } from './settle/grid-settlement.ts';
import { startValidator, verdictReason } from './trust/validator.ts';
import { createRouteGrants } from './coordinator/route-grants.ts';
import type { Validator, Verdict } from './trust/validator.ts';

/** onnxruntime-web's .wasm and loader files, served at ORT_ASSET_PATH for the engine workers. */
const ORT_DIST_DIR = fileURLToPath(new URL('../node_modules/onnxruntime-web/dist/', import.meta.url));

export interface GridServerOptions {
  host: string;
  port: number;
  relayPort: number;
  /** the model package directory the grid serves */
  modelDir: string;
  /** the built web app (vite build) */
  webDir?: string;
  maxLayersPerNode?: number;
}

export interface GridServer {
  /** the HTTP origin with a trailing slash: open `${url}donor/` to donate */
  url: string;
  manifest: Manifest;
  relay: RelayNode;
  coordinator: Coordinator;
  validator: Validator;
  http: HttpServer;
  /** the server's own grid client (the OpenAI gateway's), connected on first use */
  client(): Promise<GridClient>;
  close(): Promise<void>;
}

/** The grid cannot answer yet: no chain of serving stages covers the model. */
class NoRouteHttpError extends HttpError {
  override name = 'NoRouteHttpError';
  constructor(message: string) {
    super(503, message, { type: 'service_unavailable', code: 'no_route' });
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
  log?: (line: string) => void;
}

export async function startGridServer(options: GridServerOptions, deps: GridServerDeps = {}): Promise<GridServer> {
  const manifest = await parseManifest(await readFile(join(options.modelDir, MANIFEST_FILE), 'utf8'), join(options.modelDir, MANIFEST_FILE));
  const relay = await startRelay({ host: options.host, port: options.relayPort });
  const packagePath = `/packages/${manifest.id}/`;
  const { store, settlement } = deps;
  const log = deps.log ?? (() => {});
  const coordinator = await startCoordinator(
    { manifest, packageUrl: packagePath, maxLayersPerNode: options.maxLayersPerNode },
    {
      node: relay,
      events: {
        ...(store && storeEvents(store, manifest.id)),
        payTo: (peerId, address) => void settlement?.donorJoined(peerId, address).catch((err: Error) => log(`settlement: no stake for ${peerId}: ${err.message}`)),
      },
    },
  );

  // The validator runs on the relay node: stages reach it over the WebSocket connection they already have.
  const replayer = startReplayerThread({ dir: options.modelDir, manifest });
  const grants = createRouteGrants();
  const validator = await startValidator({ manifest }, {
    node: relay,
    replayer,
    routedClient: grants.granted,
    backlog: store,
    reputation: store && ((peerId) => store.reputation(peerId)),
    onVerdict: (verdict) => void judged(verdict).catch(() => undefined),
    onRefusal: (refusal) => store?.recordRefusal({ ...refusal, requestId: refusal.requestId ?? null }),
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
    coordinator.banish({ peerId: verdict.peerId, requestId: verdict.requestId, layers: verdict.layers, reason: verdictReason(verdict), evidenceHash, slashTx: slashed?.txHash });
  }

  let client: Promise<GridClient> | null = null;
  const api: ApiHandler[] = [
    {
      method: 'GET',
      path: '/api/info',
      handle: () => jsonResponse({ relayAddrs: relay.getMultiaddrs().map(String), models: [coordinator.offer], ...(settlement && { settlement: paymentInfo(settlement) }) } satisfies GridInfo),
    },
    {
      method: 'GET',
      path: '/api/route',
      handle: (req) => {
        const requested = req.url.searchParams.get('package');
        if (requested && requested !== manifest.id) throw new HttpError(404, `this grid serves package ${manifest.id}, not ${requested}`, { code: 'model_not_found' });
        try {
          const client = req.url.searchParams.get('client') ?? undefined;
          const route = coordinator.registry.route(client);
          if (client && route.hops.length > 0) grants.grant(client, route.hops[0].peerId);
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
      handle: () =>
        jsonResponse({
          coverage: coordinator.registry.coverage(),
          peers: [...coordinator.registry.peers.values()].map((p) => ({
            peerId: p.peerId,
            role: p.role,
            device: p.device,
            assignment: p.assignment,
            serving: p.serving,
            pieces: p.have.size,
            stats: p.stats,
            rtt: Object.fromEntries(p.rtt),
          })),
        }),
    },
    ...(settlement ? [...ledgerHandlers(settlement, store), ...voucherHandlers(settlement)] : []),
    ...createOpenAIGateway({
      models: () => [{ id: manifest.id, name: manifest.name, contextLength: manifest.config.maxSeqLen }],
      // The gateway answers through the grid like any SDK client would.
      apiFor: (id) => (id === manifest.id || id === manifest.name ? lazyApi() : undefined),
    }),
  ];
  const http = await startHttpServer({
    host: options.host,
    port: options.port,
    routes: { '/': options.webDir ?? DEFAULT_WEB_DIR, [ORT_ASSET_PATH]: ORT_DIST_DIR, [packagePath]: options.modelDir },
    api,
  });

  // The gateway's requests: recorded, and paid for with a voucher when settlement runs.
  const observer: RequestObserver | undefined = (store || settlement) && {
    started: (r) => store?.requestStarted({ ...r, packageId: manifest.id }),
    ended: (r) => {
      store?.requestEnded({ requestId: r.requestId, completionTokens: r.completionTokens, status: r.status, error: r.error });
      void settlement?.gatewayRequest(r.stageRequestIds, r.promptTokens + r.completionTokens, manifest.config.nLayers).catch((err: Error) => log(`settlement: the gateway's voucher failed: ${err.message}`));
    },
  };

  const connect = () => (client ??= connectGrid({ url: http.url, model: manifest.id }, { ort: ort as unknown as OrtModule, observer }).catch((err) => {
    client = null;
    throw err;
  }));
  /** The OpenAI API of the server's grid client, connected when a request first needs it. */
  function lazyApi(): OpenAIApi {
    // The overloads only narrow the result by `stream`; one implementation serves them all.
    const chat = (params: ChatCompletionCreateParams, opts?: RequestOptions) => connect().then((c) => c.chat.completions.create(params, opts));
    const text = (params: CompletionCreateParams, opts?: RequestOptions) => connect().then((c) => c.completions.create(params, opts));
    return { modelId: manifest.id, chat: { completions: { create: chat as ChatCompletionsApi['create'] } }, completions: { create: text as CompletionsApi['create'] } };
  }

  return {
    url: http.url,
    manifest,
    relay,
    coordinator,
    validator,
    http,
    client: connect,
    async close() {
      const c = await client?.catch(() => null);
      await c?.close();
      await validator.stop().catch(() => undefined);
      await replayer.close();
      await coordinator.stop().catch(() => undefined);
      await http.close();
      await relay.stop();

    },
  };
}
