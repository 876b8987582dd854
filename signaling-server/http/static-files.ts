/**
 * Serves directories under URL prefixes: the built web app, onnxruntime-web's assets and model
 * packages. Every response carries the headers a crossOriginIsolated page needs (COOP/COEP, so
 * onnxruntime-web gets threaded WASM) and CORP/CORS, so pages on other origins may fetch from it.
 * Files are streamed, so multi-GB model packages cost no memory, and byte ranges are served
 * (206/416) because peers use the package route as a BitTorrent web seed (BEP 19).
 * Used by the server (server.ts) and, through startStaticServer, by the e2e tests (testkit/browser-app.ts).
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, resolve, sep } from 'node:path';
import { answerPreflight, type PreflightPolicy } from './cors.ts';
import { listenHttp } from './listen.ts';

/** URL prefix (e.g. '/', '/ort/') → directory served under it; the longest matching prefix wins. */
export type StaticRoutes = Record<string, string>;

export interface StaticServerOptions {
  routes: StaticRoutes;
}

export interface StaticServer {
  /** Origin with a trailing slash, e.g. 'http://127.0.0.1:41234/'. */
  url: string;
  close(): Promise<void>;
}

export interface StaticFiles {
  /** Answers a request for a file under the routes (404 when none matches). */
  serve(req: IncomingMessage, res: ServerResponse): Promise<void>;
}

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  // WebAssembly.instantiateStreaming refuses any other type.
  '.wasm': 'application/wasm',
  '.onnx': 'application/octet-stream',
  '.data': 'application/octet-stream',
  '.bin': 'application/octet-stream',
};

export const STATIC_HEADERS = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
  'cross-origin-resource-policy': 'cross-origin',
  'access-control-allow-origin': '*',
  // A web seed's client reads Content-Range to place the bytes; CORS hides it unless exposed.
  'access-control-expose-headers': 'content-range, content-length, accept-ranges',
  // Builds change under the same names (each e2e run rebuilds dist/web); never keep an old copy.
  'cache-control': 'no-store',
};

/** A cross-origin fetch with a Range header, which is not CORS-safelisted, asks first. */
const STATIC_PREFLIGHT: PreflightPolicy = { headers: STATIC_HEADERS, methods: 'GET, HEAD, OPTIONS', allowedHeaders: 'range' };

interface Route {
  prefix: string;
  root: string;
}

function contentTypeOf(path: string): string {
  return CONTENT_TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream';
}

/**
 * Maps a request path to a file under one route, or says why not. `..` segments are refused
 * outright (raw or percent-encoded) rather than normalised away, so a traversal attempt is
 * visible as a 403 in the test that makes it.
 */
function resolveRequestPath(routes: readonly Route[], rawPath: string): { file: string } | { status: 400 | 403 | 404 } {
  const path = rawPath.split('?')[0].split('#')[0];
  const route = routes.find((r) => path.startsWith(r.prefix));
  if (!route) return { status: 404 };
  let segments: string[];
  try {
    segments = path.slice(route.prefix.length).split('/').map(decodeURIComponent);
  } catch {
    return { status: 400 };
  }
  if (segments.some((s) => s === '..' || s.includes('\\') || s.includes('/') || s.includes('\0'))) return { status: 403 };
  const file = resolve(route.root, join(...segments.filter((s) => s !== '' && s !== '.'), path.endsWith('/') ? 'index.html' : ''));
  if (file !== route.root && !file.startsWith(route.root + sep)) return { status: 403 };
  return { file };
}

/**
 * A single `bytes=` range of a file of `size` bytes (inclusive ends), 'unsatisfiable', or
 * undefined when the header is to be ignored and the whole file sent, which RFC 9110 allows
 * for anything we do not serve: other units, malformed values, several ranges.
 */
export function parseByteRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  // A last byte before the first makes the range invalid, ignored; an open end is not one, so
  // `bytes=99999999999999999999999-` is a range past the end: unsatisfiable (RFC 9110 §14.1.1).
  const start = Number(m[1]);
  if (m[2] !== '' && Number(m[2]) < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  const last = m[2] === '' ? size - 1 : Number(m[2]);
  return { start, end: Math.min(last, size - 1) };
}

export function createStaticFiles(routeTable: StaticRoutes): StaticFiles {
  const routes: Route[] = Object.entries(routeTable)
    .map(([prefix, dir]) => ({ prefix: prefix.endsWith('/') ? prefix : `${prefix}/`, root: resolve(dir) }))
    .sort((a, b) => b.prefix.length - a.prefix.length);
  return { serve: (req, res) => serve(routes, req, res) };
}

async function serve(routes: readonly Route[], req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method === 'OPTIONS') return answerPreflight(req, res, STATIC_PREFLIGHT);
  if (req.method !== 'GET' && req.method !== 'HEAD') return end(res, 405, 'only GET and HEAD');
  const target = resolveRequestPath(routes, req.url ?? '/');
  if ('status' in target) return end(res, target.status, target.status === 403 ? 'path traversal refused' : 'not found');
  let size: number;
  try {
    const info = await stat(target.file);
    if (info.isDirectory()) return redirectToFolder(req, res);
    if (!info.isFile()) return end(res, 404, 'not found');
    size = info.size;
  } catch {
    return end(res, 404, 'not found');
  }
  const headers = { ...STATIC_HEADERS, 'content-type': contentTypeOf(target.file), 'accept-ranges': 'bytes' };
  // We keep no validators (ETag, Last-Modified), so an If-Range can never match: send it all.
  const range = req.headers['if-range'] === undefined ? parseByteRange(req.headers.range, size) : undefined;
  if (range === 'unsatisfiable') {
    res.writeHead(416, { ...headers, 'content-range': `bytes */${size}`, 'content-length': 0 });
    return void res.end();
  }
  if (range) res.writeHead(206, { ...headers, 'content-range': `bytes ${range.start}-${range.end}/${size}`, 'content-length': range.end - range.start + 1 });
  else res.writeHead(200, { ...headers, 'content-length': size });
  if (req.method === 'HEAD') return void res.end();
  const stream = createReadStream(target.file, range ?? {});
  stream.on('error', (err) => res.destroy(err));
  stream.pipe(res);
}

/** '/engine-test' → '/engine-test/', so the page's relative URLs resolve inside its folder. */
function redirectToFolder(req: IncomingMessage, res: ServerResponse): void {
  // Split by hand, not by `new URL`: the target may be one it cannot parse (`//[`).
  const target = (req.url ?? '/').split('#')[0];
  const queryAt = target.indexOf('?');
  const [path, query] = queryAt < 0 ? [target, ''] : [target.slice(0, queryAt), target.slice(queryAt)];
  // '//host' as a Location is another origin; the folder is on this one.
  res.writeHead(301, { ...STATIC_HEADERS, location: `/${path.replace(/^\/+/, '')}/${query}` });
  res.end();
}

function end(res: ServerResponse, status: number, message: string): void {
  res.writeHead(status, { ...STATIC_HEADERS, 'content-type': 'text/plain; charset=utf-8' });
  res.end(`${status} ${message}\n`);
}

/** A server of static files alone on 127.0.0.1 and a free port: the e2e tests' page server. */
export async function startStaticServer(options: StaticServerOptions): Promise<StaticServer> {
  const files = createStaticFiles(options.routes);
  const listening = await listenHttp((req, res) => {
    files.serve(req, res).catch((err: unknown) => {
      if (!res.headersSent) end(res, 500, String(err));
      else res.destroy(err as Error);
    });
  }, '127.0.0.1', 0);
  return { url: listening.url, close: listening.close };
}
