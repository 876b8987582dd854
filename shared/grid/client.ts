/**
 * The grid client behind the SDK (packages/sdk) and the server's OpenAI gateway: it fetches the
 * client side of a package from the server (manifest, embedding, head, tokenizer; every piece
 * hash-checked), joins the grid as a libp2p peer, asks the coordinator for a route, and
 * generates through it with the same pipeline the local runner uses. onnxruntime (web or node)
 * and fetch are injected, so the same client runs in a browser and in Node. Given a `payer`, it
 * pays for each request with a signed voucher when the request ends (shared/settle/request-payer.ts).
 */
import { InfermeshError, PackageError, UsageError } from '../errors.ts';
import { MANIFEST_FILE, parseManifest, shardOf } from '../model/manifest.ts';
import { fetchPackageFiles, readVerifiedFile } from '../model/package-fetch.ts';
import type { Manifest } from '../model/manifest.ts';
import { createEmbeddingTable } from '../model/embedding.ts';
import { decodeModel } from '../model/onnx/schema.ts';
import { createPipeline } from '../runtime/pipeline.ts';
import type { GeneratedToken, GenerateOptions, Pipeline } from '../runtime/pipeline.ts';
import { PIPELINE_SESSION_CONFIG } from '../runtime/ort.ts';
import type { OrtModule, OrtSession } from '../runtime/ort.ts';
import { openWasmHead } from '../runtime/wasm-head.ts';
import { loadTokenizer } from '../tokenizer/load.ts';
import type { LoadedTokenizer } from '../tokenizer/load.ts';
import { createChatRenderer, tokenizerAddsBos } from '../openai/chat-template.ts';
import { createOpenAIApi } from '../openai/completions.ts';
import type { OpenAIApi } from '../openai/types.ts';
import type { LocalAccount } from 'viem';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PaymentRefusedError } from '../settle/errors.ts';
import { createRequestPayer } from '../settle/request-payer.ts';
import type { RequestPayer, RequestPayment, SettlementInfo } from '../settle/request-payer.ts';
import { createPeerNode } from './node.ts';
import { rtcConfiguration } from './ice.ts';
import { keepSpare } from './spare-streams.ts';
import { STAGE_PROTOCOL } from './protocol-ids.ts';
import type { PeerNode } from './node.ts';
import type { ModelOffer, RouteHop } from './protocol.ts';
import { createEchoes } from './probe.ts';
import { createRouteLink, ROUTE_ERRORS, serveResults } from './route-link.ts';
import type { HopReport, ResultSink, RouteLink } from './route-link.ts';
import { createRecoveringRoute, LayersUncoveredError } from './route-recovery.ts';
import { GridApiError, gridApi } from './grid-api.ts';
import type { Recovery, RecoveringRouteOptions, RequestTrack, StageRequest, StandbyRoute } from './route-recovery.ts';


/** What GET /api/info answers. */
export interface GridInfo {
  relayAddrs: string[];
  models: ModelOffer[];
  /** STUN/TURN servers for every WebRTC dial, when the server names some (else the WebRTC library's defaults) */
  iceServers?: RTCIceServer[];
  /** when the TURN credentials in iceServers expire, ms since the epoch */
  iceServersValidUntil?: number;
  /** how clients pay, when the server settles on a chain (absent with `--chain off`) */
  settlement?: SettlementInfo;
}

/** What GET /api/route answers: the route and the standbys that can replace its hops. */
export interface RouteAnswer extends StandbyRoute {
  predictedMs: number;
}

export interface ConnectOptions {
  /** the server's HTTP URL, e.g. http://127.0.0.1:8470 */
  url: string;
  /** package id; default: the first model the server offers */
  model?: string;
  /** the relay addresses to dial instead of those /api/info advertises (the server's own client dials its relay locally, not through the public URL) */
  relayAddrs?: string[];
  /** give up on a step after this long (default 60 s) */
  stepTimeoutMs?: number;
  /** how a route that fails mid-request is noticed and replaced (shared/grid/route-recovery.ts) */
  recovery?: Omit<RecoveringRouteOptions, 'stepTimeoutMs'>;
  /**
   * Pay for every request with an EIP-712 voucher signed by this account (browser:
   * `privateKeyToAccount(key)` from viem/accounts). Its address needs escrow on the server's
   * Settlement contract (`GridInfo.settlement.contract`; shared/settle/settlement-client.ts
   * `deposit` puts it there). Without it requests are unpaid and nothing else changes.
   */
  payer?: LocalAccount;
  /** stops connecting: the downloads, and what follows them; connect() then rejects with the signal's reason (an AbortError) */
  signal?: AbortSignal;
  /**
   * told as the client's share of the model (embedding, head, tokenizer) downloads: bytes so
   * far and in all, and the file the last bytes were of, for a progress bar; the last call has
   * `loaded === total`
   */
  onProgress?: (progress: DownloadProgress) => void;
  /** told of each voucher the server accepted */
  onPayment?: (payment: RequestPayment) => void;
  /**
   * told of each voucher the server refused (its request is then unpaid); without it the
   * refusal is thrown as a PaymentRefusedError by the client's next generate / create call
   * (or by close())
   */
  onPaymentError?: (err: PaymentRefusedError) => void;
}

export interface DownloadProgress {
  loaded: number;
  total: number;
  file: string;
}

/** Told about every generation this client runs (the server records its gateway's requests). */
export interface RequestObserver {
  started(request: { requestId: string; route: RouteHop[]; promptTokens: number }): void;
  /**
   * `stageRequestIds`: the ids the stages saw, one per attempt (the validator's verdicts name
   * these); `answeredBy`: the stage request whose stages answered the last step (each owes a
   * commitment to it), when there was one
   */
  ended(result: { requestId: string; stageRequestIds: string[]; answeredBy?: StageRequest; promptTokens: number; completionTokens: number; status: 'done' | 'failed' | 'aborted'; error?: string }): void;
}

export interface ClientDeps {
  ort: OrtModule;
  observer?: RequestObserver;
  fetch?: typeof fetch;
  /** onnxruntime session options for the head (e.g. threads, execution providers) */
  headSessionOptions?: object;
  /** the head runs where onnxruntime's provider is WASM: a quantized head on infermesh's kernels (shared/runtime/wasm-head.ts) */
  headOnWasm?: boolean;
}

export interface GridRouteReport {
  hops: HopReport[];
  predictedMs: number;
  /** the last request's route changes: a stage that left, stalled or slowed down, swapped mid-request */
  recoveries: Recovery[];
  /** the last request's routes (and hedges), each with the id its stages knew it by: who answers to the validator for what */
  stageRequests: StageRequest[];
}

export interface GridClient extends OpenAIApi {
  readonly peerId: string;
  readonly manifest: Manifest;
  readonly tokenizer: LoadedTokenizer;
  /** the grid's Settlement contract, chain and price, where a payer deposits escrow; null on a grid that does not settle */
  readonly settlement: SettlementInfo | null;
  generate(prompt: string, options?: Partial<GenerateOptions>): AsyncGenerator<GeneratedToken, void, void>;
  /**
   * The route generation runs on now: the one a running request was last moved to (the next
   * request may start on a fresher one), asked from the coordinator when there is none yet.
   */
  route(): Promise<RouteLink>;
  /** The current route's hops with measured stage times and link kinds; null before the first. */
  routeReport(): GridRouteReport | null;
  /** The payer's address and the latest cumulative amount the server accepted (after the vouchers in flight); null without a payer. */
  payments(): Promise<{ client: string; cumulativeAmount: bigint } | null>;
  close(): Promise<void>;
}

export { ROUTE_ERRORS, LayersUncoveredError, GridApiError };

export const DEFAULT_GENERATE: GenerateOptions = { maxTokens: 256, temperature: 0, topP: 0.9, seed: 0 };

export async function connectGrid(options: ConnectOptions, deps: ClientDeps): Promise<GridClient> {
  const fetchFn = deps.fetch ?? fetch;
  const base = options.url.replace(/\/$/, '');
  const api = gridApi(base, fetchFn);

  const info = await api<GridInfo>('/api/info');
  if (options.payer && !info.settlement) throw new UsageError(`the grid at ${base} does not settle payments (it runs without a chain): connect without a payer`);
  const offer = options.model ? info.models.find((m) => m.packageId === options.model) : info.models[0];
  if (!offer) throw new UsageError(options.model ? `the grid does not serve model ${options.model}` : 'the grid serves no model');
  const packageUrl = new URL(offer.packageUrl, `${base}/`).href;
  const { signal } = options;
  const manifest = await parseManifest(new TextDecoder().decode(await fetchPackageFiles(packageUrl, fetchFn, { signal })(MANIFEST_FILE)), `${packageUrl}${MANIFEST_FILE}`);
  if (manifest.id !== offer.packageId) throw new PackageError(`the server's manifest is package ${manifest.id}, not the offered ${offer.packageId}`, { source: packageUrl });

  const embed = shardOf(manifest, 'embed');
  const headShard = shardOf(manifest, 'head');
  const t = manifest.tokenizer;
  // The client's share of the model: what it downloads before it can generate.
  const configFile = t.kind === 'huggingface' ? t.configFile : undefined;
  const share = [embed.graph, embed.data, headShard.graph, headShard.data, t.file, ...(configFile ? [configFile] : [])];
  const total = share.reduce((sum, path) => sum + (manifest.files.find((f) => f.path === path)?.size ?? 0), 0);
  let loaded = 0;
  const onBytes = options.onProgress && ((path: string, bytes: number) => options.onProgress!({ loaded: (loaded += bytes), total, file: path }));
  const file = fetchPackageFiles(packageUrl, fetchFn, { signal, onBytes });
  const verified = async (path: string) => (await readVerifiedFile(manifest, path, file)).bytes;
  const [embedGraph, embedData, headGraph, headData, tokenizerMain, tokenizerConfigBytes] = await Promise.all([
    verified(embed.graph),
    verified(embed.data),
    verified(headShard.graph),
    verified(headShard.data),
    verified(t.file),
    configFile ? verified(configFile) : Promise.resolve(undefined),
  ]);
  signal?.throwIfAborted();
  const tokenizer = loadTokenizer(manifest, tokenizerMain, tokenizerConfigBytes);
  const embedding = createEmbeddingTable(manifest.config, decodeModel(embedGraph), embedData);
  // The head's threads park when a run ends (PIPELINE_SESSION_CONFIG): a client often shares
  // its cores with the stages it waits for, and spinning threads would slow them.
  const headFiles = [{ path: headShard.data, data: headData }];
  const sessionOptions = { extra: { session: PIPELINE_SESSION_CONFIG }, ...deps.headSessionOptions };
  const head: OrtSession = deps.headOnWasm
    ? await openWasmHead({ config: manifest.config, graph: headGraph, externalData: headFiles }, deps.ort, sessionOptions)
    : await deps.ort.InferenceSession.create(headGraph, { ...sessionOptions, externalData: headFiles } as never);

  const payer: RequestPayer | undefined =
    options.payer &&
    createRequestPayer(
      { url: base, account: options.payer, settlement: info.settlement!, nLayers: manifest.config.nLayers, onPayment: options.onPayment, onPaymentError: options.onPaymentError },
      { fetch: fetchFn },
    );

  // The client's own key: it seals the frames it sends, so the first stage can prove its input.
  const privateKey = await generateKeyPair('Ed25519');
  const node: PeerNode = await createPeerNode({ relayAddrs: options.relayAddrs ?? info.relayAddrs, privateKey, rtcConfiguration: rtcConfiguration(info, () => api<GridInfo>('/api/info')) });
  if (signal?.aborted) {
    await node.stop();
    throw signal.reason;
  }
  const sink: ResultSink = await serveResults(node);
  const echoes = createEchoes(node);
  let predictedMs = 0;
  let lastTrack: RequestTrack | undefined;
  // Generation goes through a route that replaces stages which leave, stall or slow down
  // mid-request (route-recovery.ts): from the standbys the coordinator names, else a new route.
  const recovering = createRecoveringRoute(
    { ...options.recovery, stepTimeoutMs: options.stepTimeoutMs },
    {
      async route(avoid) {
        const query = `package=${encodeURIComponent(manifest.id)}&client=${encodeURIComponent(node.peerId.toString())}${avoid.length ? `&avoid=${avoid.map(encodeURIComponent).join(',')}` : ''}`;
        const answer = await api<RouteAnswer>(`/api/route?${query}`);
        predictedMs = answer.predictedMs;
        return { hops: answer.hops, standbys: answer.standbys ?? [] };
      },
      openLink: (hops) => createRouteLink({ packageId: manifest.id, hops, stepTimeoutMs: options.stepTimeoutMs }, { node, sink, privateKey }),
      answers: (hop, timeoutMs) => echoes.answers(hop, timeoutMs),
      // A stage is dialled ahead, and its echo stream opened, so that blaming it costs one round
      // trip; a first stage gets a spare stage stream too, so a route starting there opens at once.
      warm: (hop) => {
        echoes.warm(hop);
        if (hop.layers.start === 0) keepSpare(node, hop, STAGE_PROTOCOL);
      },
    },
  );
  const pipeline: Pipeline = createPipeline(
    { config: manifest.config, tokenizer: tokenizer.tokenizer, stopIds: tokenizer.stopIds, embedding, head, stages: [recovering], newRequestId: () => crypto.randomUUID() },
    { ort: deps.ort },
  );
  const route = async (): Promise<RouteLink> => recovering.currentLink() ?? (await recovering.current()).link;

  const tokenizerConfig = tokenizerConfigBytes ? (JSON.parse(new TextDecoder().decode(tokenizerConfigBytes)) as object) : null;
  async function* generate(prompt: string, opts: Partial<GenerateOptions> = {}): AsyncGenerator<GeneratedToken, void, void> {
    const requestId = crypto.randomUUID();
    let completionTokens = 0;
    let status: 'done' | 'failed' | 'aborted' = 'aborted';
    let error: string | undefined;
    let started = false;
    let promptTokens = 0;
    const stageRequestIds: string[] = [];
    // An earlier request's refused voucher is this call's error (unless onPaymentError takes it).
    await payer?.check();
    const track = recovering.track(requestId);
    lastTrack = track;
    try {
      const { link: current } = await recovering.current();
      promptTokens = tokenizer.tokenizer.encode(prompt).length;
      deps.observer?.started({ requestId, route: current.hops, promptTokens });
      started = true;
      for await (const token of pipeline.generate(prompt, { ...DEFAULT_GENERATE, ...opts, requestId })) {
        if (token.id !== null) completionTokens += 1;
        yield { ...token, recoveries: track.recoveries.length };
      }
      status = 'done';
    } catch (err) {
      status = opts.signal?.aborted ? 'aborted' : 'failed';
      error = (err as Error).message;
      throw err;
    } finally {
      // A retry is a new request to the stages (they ended the first): one id per route it ran on.
      stageRequestIds.push(...track.stageRequests.map((s) => s.id));
      // The pipeline ends the requests it stepped; one refused before its first step (a prompt
      // too long) still has a track to drop.
      void recovering.end(requestId);
      if (started) {
        // The route the last step was answered on: the last recovery's, else the first.
        const finalId = track.recoveries.at(-1)?.stageRequestId ?? track.stageRequests[0]?.id;
        const answeredBy = completionTokens > 0 ? track.stageRequests.find((s) => s.id === finalId) : undefined;
        deps.observer?.ended({ requestId, stageRequestIds, answeredBy, promptTokens, completionTokens, status, error });
        // Whatever the outcome, the stages did this work: the voucher goes out after the request,
        // off its path. A replay is work too (every stage of a new route prefilled the earlier
        // rows again): the voucher covers it, so the stages that served are paid in full.
        payer?.charge({ requestIds: stageRequestIds, tokens: promptTokens + completionTokens + track.replayedRows });
      }
    }
  }
  const openai = createOpenAIApi({
    modelId: manifest.id,
    generate,
    countTokens: (text) => tokenizer.tokenizer.encode(text).length,
    renderChat: createChatRenderer(tokenizerConfig, { tokenizerAddsBos: tokenizerAddsBos(tokenizer.tokenizer), source: t.kind === 'huggingface' ? t.configFile : undefined }),
    contextLength: manifest.config.maxSeqLen,
    maxPieceChars: tokenizer.tokenizer.maxPieceChars,
  });

  return {
    peerId: node.peerId.toString(),
    manifest,
    tokenizer,
    settlement: info.settlement ?? null,
    modelId: openai.modelId,
    chat: openai.chat,
    completions: openai.completions,
    generate,
    route,
    routeReport: () => {
      const link = recovering.currentLink();
      return link ? { hops: link.report(), predictedMs, recoveries: lastTrack?.recoveries ?? [], stageRequests: lastTrack?.stageRequests ?? [] } : null;
    },
    payments: async () => (payer ? { client: payer.client, cumulativeAmount: await payer.cumulativeAmount() } : null),
    async close() {
      // The last request's voucher is sent before the client goes; a refusal not yet reported is thrown after cleanup.
      const unpaid = await payer?.check().then(() => undefined, (err: unknown) => err);
      await recovering.close();
      echoes.close();
      await sink.stop().catch(() => undefined);
      await node.stop();
      await head.release();
      if (unpaid) throw unpaid;
    },
  };
}
