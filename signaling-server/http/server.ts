/**
 * The signaling server's HTTP side: static files (the web app, onnxruntime-web's assets, model
 * packages as web seeds; static-files.ts) and an API under /v1 (OpenAI-compatible,
 * openai-gateway.ts) and /api (the coordinator's REST), whose handlers are handed in, so each
 * part is written and tested alone and the server's entry point wires them together.
 *
 * API responses carry CORS headers (SDK clients run on other origins), request bodies are JSON
 * under a size limit and a budget over all requests at once (request-body.ts), and every
 * failure is a JSON body in OpenAI's shape, `{ error: { message, type, param, code } }`, because
 * OpenAI SDKs read exactly that: a target that is not a URL, a request Node's parser refuses, a
 * handler that throws. No request can throw past the listener: the server is public.
 */
import { once } from 'node:events';
import { STATUS_CODES, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { InfermeshError, UsageError } from '../../shared/errors.ts';
import { answerPreflight, type PreflightPolicy } from './cors.ts';
import { HttpError, MalformedHttpError, MethodNotAllowedError, quoted, RouteNotFoundError } from './errors.ts';
import { listenHttp } from './listen.ts';
import { createBodyBudget, readJsonBody, type BodyBudget } from './request-body.ts';
import { parseRequestTarget } from './request-target.ts';
import { createStaticFiles, type StaticRoutes } from './static-files.ts';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface ApiRequest {
  method: string;
  url: URL;
  headers: IncomingHttpHeaders;
  /** Aborted when the client goes away before the response is complete. */
  signal: AbortSignal;
}

export type ApiResponse =
  | { status?: number; headers?: Record<string, string>; json: unknown }
  /** Server-sent events: each item is sent as one `data:` event, in order. */
  | { status?: number; headers?: Record<string, string>; events: AsyncIterable<string> }
  /** A document (an export: CSV, JSON Lines, Parquet), sent as it is; `contentType` names it. */
  | { status?: number; headers?: Record<string, string>; document: string | Uint8Array; contentType: string };

export interface ApiHandler {
  method: HttpMethod;
  /** An exact path ('/v1/models'), or a prefix ending in '/*' ('/v1/models/*'); the most specific wins. */
  path: string;
  /** `body` is the parsed JSON request body, undefined when there is none. */
  handle(req: ApiRequest, body: unknown): ApiResponse | Promise<ApiResponse>;
}

/** The API part of a server, handed in: the gateway's handlers, the coordinator's REST, ... */
export type ApiHandlers = ApiHandler[];

export interface HttpServerOptions {
  /** e.g. '127.0.0.1', or '0.0.0.0' for every interface */
  host: string;
  /** 0 picks a free port */
  port: number;
  /** URL prefix → directory of static files */
  routes?: StaticRoutes;
  api?: ApiHandlers;
  /** Largest request body accepted; default DEFAULT_MAX_BODY_BYTES. */
  maxBodyBytes?: number;
  /** Most bytes of bodies held at once over all requests in flight; default DEFAULT_MAX_HELD_BODY_BYTES. */
  maxHeldBodyBytes?: number;
  /** WebSocket upgrades by path (the relay's, at '/'); an upgrade anywhere else is a 404 */
  upgrades?: Record<string, UpgradeHandler>;
  /** PEM certificate chain and key: serve https and wss on the port */
  tls?: { cert: string; key: string };
}

/** Takes an upgraded request's socket (node:http's 'upgrade' event). */
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

export interface HttpServerDeps {
  /** Where unexpected (500) errors are reported; default console.error. */
  logError?: (err: unknown) => void;
}

export interface HttpServer {
  /** Origin with a trailing slash, e.g. 'http://127.0.0.1:8470/'. */
  url: string;
  port: number;
  /** the same, in plain http on loopback (a second port when the server speaks TLS): for the server's own client */
  localUrl: string;
  close(): Promise<void>;
}

export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** Paths under these are API routes: JSON errors and CORS, never static files. */
export const API_PREFIXES = ['/v1/', '/api/'];
/**
 * 1 MiB: a chat that fills a 32k-token context is about 150 KB of JSON; more is a mistake or an
 * attack (a prompt is refused past the context anyway, after costing the tokenizer its time).
 */
export const DEFAULT_MAX_BODY_BYTES = 1 << 20;
/** 64 MiB of bodies at once: 64 requests at the limit, thousands of ordinary ones. */
export const DEFAULT_MAX_HELD_BODY_BYTES = 64 << 20;

const API_HEADERS = {
  'access-control-allow-origin': '*',
  // Pages that are crossOriginIsolated (COEP require-corp) may fetch it without CORS mode too.
  'cross-origin-resource-policy': 'cross-origin',
  'cache-control': 'no-store',
  // A browser client may read how many route recoveries a completion took (openai-gateway.ts).
  'access-control-expose-headers': 'x-infermesh-recoveries, retry-after',
};

/** OpenAI's SDKs send Authorization and x-stainless-* headers: a preflight allows what the browser asks for. */
const API_PREFLIGHT: PreflightPolicy = { headers: API_HEADERS, methods: 'GET, POST, PUT, PATCH, DELETE, OPTIONS', allowedHeaders: 'content-type, authorization' };

export function jsonResponse(value: unknown, status = 200): ApiResponse {
  return { status, json: value };
}

export function eventStreamResponse(events: AsyncIterable<string>): ApiResponse {
  return { events };
}

/**
 * The status, OpenAI-shaped body and headers for a failure: HttpError as it says, UsageError
 * 400, anything else 500 (a bug of ours, logged).
 */
export function errorResponse(err: unknown): { status: number; body: ErrorBody; headers: Record<string, string> } {
  if (err instanceof HttpError) return { status: err.status, body: { error: { message: err.message, type: err.type, param: err.param, code: err.code } }, headers: err.headers };
  if (err instanceof UsageError) return { status: 400, body: { error: { message: err.message, type: 'invalid_request_error', param: err.source ?? null, code: null } }, headers: {} };
  const message = err instanceof InfermeshError ? err.message : `internal error: ${(err as Error)?.message ?? String(err)}`;
  return { status: 500, body: { error: { message, type: 'server_error', param: null, code: err instanceof Error ? err.name : null } }, headers: {} };
}

export async function startHttpServer(options: HttpServerOptions, deps: HttpServerDeps = {}): Promise<HttpServer> {
  const files = createStaticFiles(options.routes ?? {});
  const api = options.api ?? [];
  const bodies: BodyLimits = { maxBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES, budget: createBodyBudget(options.maxHeldBodyBytes ?? DEFAULT_MAX_HELD_BODY_BYTES) };
  const logError = deps.logError ?? ((err: unknown) => console.error(err));

  /** Every request ends here: nothing a client sends may throw past this, synchronously or not. */
  async function answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // RFC 9112 §3.2: an HTTP/1.1 request without Host is a 400 (Node's own check sends no body).
    if (req.httpVersion === '1.1' && req.headers.host === undefined) throw new HttpError(400, 'an HTTP/1.1 request needs a Host header', { code: 'missing_host' });
    const url = parseRequestTarget(req.url);
    const isApi = API_PREFIXES.some((p) => url.pathname.startsWith(p) || url.pathname === p.slice(0, -1));
    return isApi ? serveApi(api, bodies, logError, url, req, res) : files.serve(req, res);
  }

  const handle = (req: IncomingMessage, res: ServerResponse) => void answer(req, res).catch((err: unknown) => sendError(res, err, logError));
  const listening = await listenHttp(handle, options.host, options.port, { requireHostHeader: false, tls: options.tls });
  // Served over TLS, the same requests are also answered in plain http on a loopback port, for
  // the server's own client (its certificate names the public host, not 127.0.0.1).
  const local = options.tls ? await listenHttp(handle, '127.0.0.1', 0, { requireHostHeader: false }) : undefined;
  // What Node answers itself, with an empty body or none at all, unless told otherwise.
  listening.server.on('clientError', answerMalformed);
  listening.server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) =>
    sendError(res, new HttpError(417, `the expectation ${quoted(String(req.headers.expect))} is not one this server meets (only 100-continue)`, { code: 'expectation_failed' }), logError),
  );
  listening.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    let handler: UpgradeHandler | undefined;
    try {
      handler = options.upgrades?.[parseRequestTarget(req.url).pathname];
    } catch (err) {
      return endSocket(socket, err instanceof HttpError ? err : new HttpError(400, String((err as Error).message), { code: 'invalid_request' }));
    }
    if (!handler) return endSocket(socket, new HttpError(404, `no WebSocket is served at ${quoted(String(req.url).slice(0, 200))}: the grid's relay is at /`, { code: 'not_found' }));
    socket.on('error', () => socket.destroy());
    handler(req, socket, head);
  });
  listening.server.on('connect', (req: IncomingMessage, socket: Duplex) =>
    endSocket(socket, new HttpError(405, `${req.method} is not allowed: this server is no proxy`, { code: 'method_not_allowed', headers: { allow: 'GET, POST, PUT, PATCH, DELETE, OPTIONS' } })),
  );
  return {
    url: listening.url,
    port: listening.port,
    localUrl: local?.url ?? listening.url,
    close: async () => {
      await Promise.all([listening.close(), local?.close()]);
    },
  };
}

/**
 * A client still sending when the server closes gets a reset, and with it loses the answer
 * already sent: the rest of its request is read and dropped first, until it pauses this long
 * (nginx's lingering_timeout) or for this long in all (lingering_time). A client pushing a
 * 4 MB body slowly on a busy machine had its answer cut by a flat 5 s.
 */
const LINGER_PAUSE_MS = 5_000;
const LINGER_MAX_MS = 30_000;

/** Sockets answered by endSocket: Node's parser reports every later chunk of theirs as another error. */
const answered = new WeakSet<Duplex>();

/** Writes a whole JSON error response on a raw socket, then closes it once the client pauses (a lingering close). */
function endSocket(socket: Duplex, err: HttpError): void {
  answered.add(socket);
  const { status, body, headers } = errorResponse(err);
  const text = JSON.stringify(body);
  const head = { ...API_HEADERS, 'content-type': 'application/json; charset=utf-8', 'content-length': String(Buffer.byteLength(text)), connection: 'close', ...headers };
  const pause = setTimeout(() => socket.destroy(), LINGER_PAUSE_MS).unref();
  const cap = setTimeout(() => socket.destroy(), LINGER_MAX_MS).unref();
  socket.on('data', () => void pause.refresh());
  socket.on('error', () => undefined);
  socket.on('close', () => {
    clearTimeout(pause);
    clearTimeout(cap);
  });
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n${Object.entries(head).map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n${text}`);
}

interface BodyLimits {
  maxBytes: number;
  budget: BodyBudget;
}

/** A 5xx other than 503 (which says "not now") is a bug of ours. */
const isOurFault = (status: number) => status >= 500 && status !== 503;

/** A failure as its status and JSON body; one that is ours is logged. */
function sendError(res: ServerResponse, err: unknown, logError: (err: unknown) => void): void {
  const { status, body, headers } = errorResponse(err);
  if (isOurFault(status)) logError(err);
  if (res.headersSent) return void res.destroy(err instanceof Error ? err : undefined);
  sendJson(res, status, body, headers);
}

/** Node's parser errors (its own codes) and the status each is answered with. */
const PARSER_STATUS: Record<string, number> = { HPE_HEADER_OVERFLOW: 431, HPE_CHUNK_EXTENSIONS_OVERFLOW: 413, ERR_HTTP_REQUEST_TIMEOUT: 408 };

/**
 * A request Node's HTTP parser could not read gets a JSON error like every other, as Node's
 * default would answer it (only on a connection that has not had a response yet), then the
 * connection is closed: after a parse error the next request's start is unknown.
 */
function answerMalformed(err: Error & { code?: string; reason?: string }, socket: Duplex): void {
  if (answered.has(socket)) return;
  if (err.code === 'ECONNRESET' || !socket.writable || (socket as Socket).bytesWritten > 0) return void socket.destroy();
  const status = PARSER_STATUS[err.code ?? ''] ?? 400;
  const what = status === 408 ? 'the request did not arrive in time' : `the request is not valid HTTP/1.1 (${err.code ?? err.name}: ${err.reason ?? err.message})`;
  endSocket(socket, new MalformedHttpError(status, what, err));
}

async function serveApi(api: readonly ApiHandler[], bodies: BodyLimits, logError: (err: unknown) => void, url: URL, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method === 'OPTIONS') return answerPreflight(req, res, API_PREFLIGHT);
  const controller = new AbortController();
  // The body's bytes stay held until the response is done: its parsed JSON lives as long.
  let held = 0;
  const release = () => {
    bodies.budget.give(held);
    held = 0;
  };
  res.on('close', () => {
    release();
    if (!res.writableFinished) controller.abort();
  });
  let response: ApiResponse;
  try {
    const handler = findHandler(api, req.method ?? 'GET', url.pathname);
    const read = await readJsonBody(req, bodies.maxBytes, bodies.budget);
    held = read.held;
    if (res.closed) release();
    response = await handler.handle({ method: req.method ?? 'GET', url, headers: req.headers, signal: controller.signal }, read.body);
  } catch (err) {
    return sendError(res, err, logError);
  }
  if ('events' in response) return sendEvents(res, response, controller.signal, logError);
  if ('document' in response) return sendDocument(res, response);
  sendJson(res, response.status ?? 200, response.json, response.headers);
}

function findHandler(api: readonly ApiHandler[], method: string, path: string): ApiHandler {
  const matching = api
    .map((h) => ({ h, score: matchScore(h.path, path) }))
    .filter((m) => m.score > 0)
    .sort((a, b) => b.score - a.score);
  if (matching.length === 0) throw new RouteNotFoundError(path);
  const handler = matching.find((m) => m.h.method === method)?.h;
  if (!handler) throw new MethodNotAllowedError(method, path, [...new Set(matching.map((m) => m.h.method))]);
  return handler;
}

/** 0: no match; an exact path beats any prefix; a longer prefix beats a shorter one. */
function matchScore(pattern: string, path: string): number {
  if (pattern.endsWith('/*')) {
    const prefix = pattern.slice(0, -1);
    return path.startsWith(prefix) ? prefix.length : 0;
  }
  return pattern === path ? Number.MAX_SAFE_INTEGER : 0;
}

function sendDocument(res: ServerResponse, response: Extract<ApiResponse, { document: unknown }>): void {
  res.writeHead(response.status ?? 200, { ...API_HEADERS, 'content-type': response.contentType, 'content-length': Buffer.byteLength(response.document), ...response.headers });
  res.end(response.document);
}

function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(value);
  res.writeHead(status, { ...API_HEADERS, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/**
 * Writes events as they come, waiting for the socket to drain. A client that goes away aborts
 * `signal` (the handler stops its work through it) and ends the iteration early; a failure
 * after the headers went out is sent as one last event with the usual error body.
 */
async function sendEvents(res: ServerResponse, response: Extract<ApiResponse, { events: unknown }>, signal: AbortSignal, logError: (err: unknown) => void): Promise<void> {
  res.writeHead(response.status ?? 200, {
    ...API_HEADERS,
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    // Proxies (nginx) would otherwise hold tokens back in their buffers.
    'x-accel-buffering': 'no',
    ...response.headers,
  });
  res.flushHeaders();
  const events = response.events[Symbol.asyncIterator]();
  try {
    for (let r = await events.next(); !r.done && !signal.aborted; r = await events.next()) {
      if (!res.write(sseEvent(r.value))) await once(res, 'drain', { signal });
    }
  } catch (err) {
    if (!signal.aborted) {
      const { status, body } = errorResponse(err);
      if (isOurFault(status)) logError(err);
      if (!res.destroyed) res.write(sseEvent(JSON.stringify(body)));
    }
  } finally {
    await events.return?.();
    if (!res.destroyed) res.end();
  }
}

/** One `data:` field per line, as the SSE format requires for multi-line payloads. */
function sseEvent(data: string): string {
  return `${data
    .split('\n')
    .map((line) => `data: ${line}`)
    .join('\n')}\n\n`;
}
