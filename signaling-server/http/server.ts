/**
 * The signaling server's HTTP side: static files (the web app, onnxruntime-web's assets, model
 * packages as web seeds; static-files.ts) and an API under /v1 (OpenAI-compatible,
 * openai-gateway.ts) and /api (the coordinator's REST), whose handlers are handed in, so each
 * part is written and tested alone and the server's entry point wires them together.
 *
 * API responses carry CORS headers (SDK clients run on other origins), request bodies are JSON
 * under a size limit, and every failure is a JSON body in OpenAI's shape,
 * `{ error: { message, type, param, code } }`, because OpenAI SDKs read exactly that.
 */
import { once } from 'node:events';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import { InfermeshError, UsageError } from '../../shared/errors.ts';
import { HttpError, InvalidJsonError, MethodNotAllowedError, RequestTooLargeError, RouteNotFoundError } from './errors.ts';
import { listenHttp } from './listen.ts';
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
  | { status?: number; headers?: Record<string, string>; events: AsyncIterable<string> };

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
}

export interface HttpServerDeps {
  /** Where unexpected (500) errors are reported; default console.error. */
  logError?: (err: unknown) => void;
}

export interface HttpServer {
  /** Origin with a trailing slash, e.g. 'http://127.0.0.1:8470/'. */
  url: string;
  port: number;
  close(): Promise<void>;
}

export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** Paths under these are API routes: JSON errors and CORS, never static files. */
export const API_PREFIXES = ['/v1/', '/api/'];
/** 4 MiB: a long chat history in JSON, with room to spare; more is a mistake or an attack. */
export const DEFAULT_MAX_BODY_BYTES = 4 << 20;

const API_HEADERS = {
  'access-control-allow-origin': '*',
  // Pages that are crossOriginIsolated (COEP require-corp) may fetch it without CORS mode too.
  'cross-origin-resource-policy': 'cross-origin',
  'cache-control': 'no-store',
};

export function jsonResponse(value: unknown, status = 200): ApiResponse {
  return { status, json: value };
}

export function eventStreamResponse(events: AsyncIterable<string>): ApiResponse {
  return { events };
}

/** The status and OpenAI-shaped body for a failure: HttpError as it says, UsageError 400, anything else 500. */
export function errorResponse(err: unknown): { status: number; body: ErrorBody } {
  if (err instanceof HttpError) return { status: err.status, body: { error: { message: err.message, type: err.type, param: err.param, code: err.code } } };
  if (err instanceof UsageError) return { status: 400, body: { error: { message: err.message, type: 'invalid_request_error', param: err.source ?? null, code: null } } };
  const message = err instanceof InfermeshError ? err.message : `internal error: ${(err as Error)?.message ?? String(err)}`;
  return { status: 500, body: { error: { message, type: 'server_error', param: null, code: err instanceof Error ? err.name : null } } };
}

export async function startHttpServer(options: HttpServerOptions, deps: HttpServerDeps = {}): Promise<HttpServer> {
  const files = createStaticFiles(options.routes ?? {});
  const api = options.api ?? [];
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const logError = deps.logError ?? ((err: unknown) => console.error(err));

  const listening = await listenHttp((req, res) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const isApi = API_PREFIXES.some((p) => path.startsWith(p) || path === p.slice(0, -1));
    const served = isApi ? serveApi(api, maxBodyBytes, logError, req, res) : files.serve(req, res);
    served.catch((err: unknown) => {
      logError(err);
      if (!res.headersSent) sendJson(res, 500, errorResponse(err).body);
      else res.destroy(err as Error);
    });
  }, options.host, options.port);
  return { url: listening.url, port: listening.port, close: listening.close };
}

async function serveApi(api: readonly ApiHandler[], maxBodyBytes: number, logError: (err: unknown) => void, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method === 'OPTIONS') return preflight(req, res);
  const url = new URL(req.url ?? '/', 'http://localhost');
  const controller = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  let response: ApiResponse;
  try {
    const handler = findHandler(api, req.method ?? 'GET', url.pathname);
    const body = await readJsonBody(req, maxBodyBytes);
    response = await handler.handle({ method: req.method ?? 'GET', url, headers: req.headers, signal: controller.signal }, body);
  } catch (err) {
    const { status, body } = errorResponse(err);
    if (status >= 500) logError(err);
    const extra: Record<string, string> = {};
    if (err instanceof MethodNotAllowedError) extra.allow = err.allow.join(', ');
    // The rest of a refused body is not worth reading; end the connection instead.
    if (err instanceof RequestTooLargeError) extra.connection = 'close';
    return sendJson(res, status, body, extra);
  }
  if ('events' in response) return sendEvents(res, response, controller.signal, logError);
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

function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  if (Number(req.headers['content-length'] ?? 0) > limit) return Promise.reject(new RequestTooLargeError(limit));
  return new Promise((done, fail) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      if (size > limit) return;
      size += chunk.byteLength;
      if (size > limit) fail(new RequestTooLargeError(limit));
      else chunks.push(chunk);
    });
    req.on('error', fail);
    req.on('end', () => {
      if (size > limit) return;
      if (size === 0) return done(undefined);
      try {
        done(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch (err) {
        fail(new InvalidJsonError(err));
      }
    });
  });
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
      if (status >= 500) logError(err);
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

function preflight(req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(204, {
    ...API_HEADERS,
    'access-control-allow-methods': 'GET, POST, PUT, PATCH, DELETE, OPTIONS',
    // OpenAI's SDKs send Authorization and x-stainless-* headers: allow what the browser asks for.
    'access-control-allow-headers': req.headers['access-control-request-headers'] ?? 'content-type, authorization',
    'access-control-max-age': '86400',
  });
  res.end();
}
