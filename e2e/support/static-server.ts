/**
 * A static file server for the e2e tests: serves directories under URL prefixes on 127.0.0.1 with
 * the headers a crossOriginIsolated page needs (COOP/COEP, so onnxruntime-web gets threaded WASM)
 * and CORP/CORS on every response, so pages on another test origin may fetch from it too.
 * Files are streamed, so multi-GB model packages cost no memory. Used by e2e/support/app.ts.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, resolve, sep } from 'node:path';

export interface StaticServerOptions {
  /** URL prefix (e.g. '/', '/ort/') → directory served under it; the longest matching prefix wins. */
  routes: Record<string, string>;
}

export interface StaticServer {
  /** Origin with a trailing slash, e.g. 'http://127.0.0.1:41234/'. */
  url: string;
  close(): Promise<void>;
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

const COMMON_HEADERS = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
  'cross-origin-resource-policy': 'cross-origin',
  'access-control-allow-origin': '*',
  // Each test builds dist/web afresh; never let a browser keep an old copy.
  'cache-control': 'no-store',
};

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

export async function startStaticServer(options: StaticServerOptions): Promise<StaticServer> {
  const routes: Route[] = Object.entries(options.routes)
    .map(([prefix, dir]) => ({ prefix: prefix.endsWith('/') ? prefix : `${prefix}/`, root: resolve(dir) }))
    .sort((a, b) => b.prefix.length - a.prefix.length);

  const server = createServer((req, res) => {
    serve(routes, req, res).catch((err: unknown) => {
      if (!res.headersSent) end(res, 500, String(err));
      else res.destroy(err as Error);
    });
  });
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => done());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((done, fail) => {
        server.close((err) => (err ? fail(err) : done()));
        // A browser keeps connections alive; the test is over, so drop them.
        server.closeAllConnections();
      }),
  };
}

async function serve(routes: readonly Route[], req: IncomingMessage, res: ServerResponse): Promise<void> {
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
  res.writeHead(200, { ...COMMON_HEADERS, 'content-type': contentTypeOf(target.file), 'content-length': size });
  if (req.method === 'HEAD') return void res.end();
  const stream = createReadStream(target.file);
  stream.on('error', (err) => res.destroy(err));
  stream.pipe(res);
}

/** '/engine-test' → '/engine-test/', so the page's relative URLs resolve inside its folder. */
function redirectToFolder(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  res.writeHead(301, { ...COMMON_HEADERS, location: `${url.pathname}/${url.search}` });
  res.end();
}

function end(res: ServerResponse, status: number, message: string): void {
  res.writeHead(status, { ...COMMON_HEADERS, 'content-type': 'text/plain; charset=utf-8' });
  res.end(`${status} ${message}\n`);
}
