/**
 * The HTTP server with API handlers handed in: routing, JSON bodies and their limit, errors in
 * OpenAI's shape, CORS for other origins, server-sent events and what a disconnect does to them,
 * static files beside the API.
 */
import { writeFile } from 'node:fs/promises';
import { request, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTempDirs, tempDir } from '../../testkit/model-fixtures.ts';
import { UsageError } from '../../shared/errors.ts';
import { ModelNotFoundError, ServiceUnavailableError } from './errors.ts';
import { pathParameter } from './request-target.ts';
import { eventStreamResponse, jsonResponse, startHttpServer, type ApiHandler, type HttpServer } from './server.ts';

let server: HttpServer;
const logged: unknown[] = [];
/** What the SSE handler saw: how many events it produced and whether its signal fired. */
const ticker = { produced: 0, aborted: false, finished: false };

const api: ApiHandler[] = [
  { method: 'GET', path: '/api/ping', handle: () => jsonResponse({ pong: true }) },
  { method: 'POST', path: '/api/echo', handle: (req, body) => jsonResponse({ method: req.method, query: req.url.searchParams.get('q'), body }, 201) },
  { method: 'GET', path: '/api/peers/*', handle: (req) => jsonResponse({ prefix: req.url.pathname }) },
  { method: 'GET', path: '/api/peers/special', handle: () => jsonResponse({ exact: true }) },
  { method: 'POST', path: '/v1/usage', handle: () => { throw new UsageError('must be between 0 and 2', { source: 'temperature' }); } },
  { method: 'GET', path: '/v1/missing', handle: () => { throw new ModelNotFoundError('gpt-9', ['stories']); } },
  { method: 'GET', path: '/v1/crash', handle: () => { throw new Error('boom'); } },
  { method: 'GET', path: '/api/items/*', handle: (req) => jsonResponse({ id: pathParameter(req.url, '/api/items/', 'id') }) },
  { method: 'GET', path: '/v1/later', handle: () => { throw new ServiceUnavailableError('no donors yet', { code: 'no_route', retryAfterSeconds: 5 }); } },
  {
    method: 'GET',
    path: '/v1/ticks',
    handle: (req) =>
      eventStreamResponse(
        (async function* () {
          try {
            for (let i = 0; i < 10_000; i++) {
              if (req.signal.aborted) {
                ticker.aborted = true;
                return;
              }
              ticker.produced++;
              yield i === 1 ? 'two\nlines' : `tick ${i}`;
              await new Promise((r) => setTimeout(r, 5));
            }
          } finally {
            ticker.aborted ||= req.signal.aborted;
            ticker.finished = true;
          }
        })(),
      ),
  },
  {
    method: 'GET',
    path: '/v1/fails-midway',
    handle: () =>
      eventStreamResponse(
        (async function* () {
          yield 'first';
          throw new UsageError('went wrong', { source: 'prompt' });
        })(),
      ),
  },
];

beforeAll(async () => {
  const web = await tempDir();
  await writeFile(join(web, 'index.html'), '<h1>app</h1>');
  const upgrades = {
    // stands in for the relay: answers the upgrade with a fixed line
    '/': (_req: IncomingMessage, socket: Duplex) => void socket.end('HTTP/1.1 101 Switching Protocols\r\ncontent-length: 0\r\n\r\n'),
  };
  server = await startHttpServer({ host: '127.0.0.1', port: 0, routes: { '/': web }, api, maxBodyBytes: 1024, maxHeldBodyBytes: 1500, upgrades }, { logError: (err) => logged.push(err) });
});
afterAll(async () => {
  await server.close();
  await removeTempDirs();
});

const url = (path: string) => new URL(path, server.url);

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Sends bytes as they are (fetch and http.request refuse malformed requests) and reads one response. */
function rawRequest(text: string, options: { keepOpen?: boolean } = {}): { response: Promise<RawResponse>; send(more: string): void; end(): void } {
  const socket = connect(server.port, '127.0.0.1');
  socket.write(text);
  if (!options.keepOpen) socket.end();
  const response = new Promise<RawResponse>((done, fail) => {
    let raw = '';
    socket.on('data', (chunk) => {
      raw += chunk.toString('latin1');
      const headEnd = raw.indexOf('\r\n\r\n');
      if (headEnd < 0) return;
      const [statusLine, ...lines] = raw.slice(0, headEnd).split('\r\n');
      const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      const body = raw.slice(headEnd + 4);
      if (body.length < Number(headers['content-length'] ?? 0)) return;
      done({ status: Number(statusLine.split(' ')[1]), headers, body });
      socket.destroy();
    });
    socket.on('error', fail);
    socket.on('close', () => fail(new Error(`the server closed the connection after ${JSON.stringify(raw)}`)));
  });
  return { response, send: (more) => socket.write(more), end: () => socket.end() };
}
const postJson = (path: string, body: string) => fetch(url(path), { method: 'POST', headers: { 'content-type': 'application/json' }, body });

describe('routing', () => {
  it('listens on the port it reports and serves static files beside the API', async () => {
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/`);
    const res = await fetch(url('/'));
    expect([res.status, await res.text(), res.headers.get('cross-origin-embedder-policy')]).toEqual([200, '<h1>app</h1>', 'require-corp']);
  });

  it('hands a handler the method, the URL and the parsed JSON body, and sends its JSON and status', async () => {
    const res = await postJson('/api/echo?q=1', '{"a":[1,2]}');
    expect(res.status).toBe(201);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(await res.json()).toEqual({ method: 'POST', query: '1', body: { a: [1, 2] } });
  });

  it('matches exact paths before prefixes', async () => {
    expect(await (await fetch(url('/api/peers/special'))).json()).toEqual({ exact: true });
    expect(await (await fetch(url('/api/peers/abc'))).json()).toEqual({ prefix: '/api/peers/abc' });
  });

  it('answers an unknown API path with a JSON 404, never a static file', async () => {
    const res = await fetch(url('/v1/nothing'));
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: { message: 'no API route /v1/nothing', type: 'invalid_request_error', param: null, code: 'not_found' } });
  });

  it('answers a known path with the wrong method with 405 and Allow', async () => {
    const res = await fetch(url('/api/ping'), { method: 'DELETE' });
    expect([res.status, res.headers.get('allow')]).toEqual([405, 'GET']);
    expect((await res.json()).error.code).toBe('method_not_allowed');
  });
});

describe('WebSocket upgrades', () => {
  const upgrade = (path: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;

  it('go to the handler of their path (the relay at /), on the same port as pages and API', async () => {
    expect((await rawRequest(upgrade('/')).response).status).toBe(101);
  });

  it('anywhere else are a 404 naming the path', async () => {
    const { status, body } = await rawRequest(upgrade('/relay')).response;
    expect(status).toBe(404);
    expect(JSON.parse(body).error).toMatchObject({ code: 'not_found', message: 'no WebSocket is served at "/relay": the grid\'s relay is at /' });
  });
});

describe('errors in OpenAI shape', () => {
  it('UsageError is a 400 naming the parameter', async () => {
    const res = await postJson('/v1/usage', '{}');
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: { message: 'temperature: must be between 0 and 2', type: 'invalid_request_error', param: 'temperature', code: null } });
  });

  it('an unknown model is a 404 with code model_not_found', async () => {
    const res = await fetch(url('/v1/missing'));
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({
      error: { message: 'the model "gpt-9" does not exist here; served: stories', type: 'invalid_request_error', param: 'model', code: 'model_not_found' },
    });
  });

  it('an unexpected failure is a 500 server_error, and is logged', async () => {
    const res = await fetch(url('/v1/crash'));
    expect(res.status).toBe(500);
    expect((await res.json()).error).toMatchObject({ message: 'internal error: boom', type: 'server_error' });
    expect(logged.some((e) => (e as Error).message === 'boom')).toBe(true);
  });

  it('a body that is not JSON is a 400', async () => {
    const res = await postJson('/api/echo', '{"a":');
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_json', message: expect.stringMatching(/^request body is not valid JSON/) });
  });

  it('a body over the limit is a 413 saying the limit, whether declared or streamed', async () => {
    const declared = await postJson('/api/echo', JSON.stringify({ text: 'x'.repeat(2000) }));
    expect(declared.status).toBe(413);
    expect((await declared.json()).error).toEqual({ message: "request body is larger than the server's limit of 1024 bytes", type: 'invalid_request_error', param: null, code: 'request_too_large' });

    // Chunked: no Content-Length, so the limit trips while reading.
    const chunked = await fetch(url('/api/echo'), {
      method: 'POST',
      body: new ReadableStream({
        start(c) {
          for (let i = 0; i < 4; i++) c.enqueue(new TextEncoder().encode('x'.repeat(400)));
          c.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    expect(chunked.status).toBe(413);
    expect((await chunked.json()).error.code).toBe('request_too_large');
  });
});

describe('malformed requests', () => {
  it('a request target that is not a URL is a 400 naming it, and the server keeps serving', async () => {
    for (const target of ['//[', '/v1//[', '/api/]', '*', 'ftp://x/', 'http://[']) {
      const res = await rawRequest(`GET ${target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`, { keepOpen: true }).response;
      expect({ target, status: res.status }).toEqual({ target, status: 400 });
      expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
      expect(JSON.parse(res.body).error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_request_target', message: expect.stringContaining('is not a URL path') });
    }
    // Not valid UTF-8 once decoded: refused by the static files (no file is named that).
    expect((await rawRequest('GET //%2f%c0%ae%c0%ae/etc/passwd HTTP/1.1\r\nhost: x\r\n\r\n', { keepOpen: true }).response).status).toBe(400);
    expect((await fetch(url('/api/ping'))).status).toBe(200);
  });

  it('a path parameter that is not percent-encoded UTF-8 is a 400 naming the parameter', async () => {
    for (const raw of ['%ZZ', '%ff', '%C0', '%E2%82']) {
      const res = await fetch(url(`/api/items/${raw}`));
      expect({ raw, status: res.status }).toEqual({ raw, status: 400 });
      expect((await res.json()).error).toEqual({ message: `the id in the path, "${raw}", is not percent-encoded UTF-8`, type: 'invalid_request_error', param: 'id', code: 'invalid_path_parameter' });
    }
    expect(await (await fetch(url('/api/items/caf%C3%A9'))).json()).toEqual({ id: 'café' });
  });

  it("a request Node's parser refuses gets a JSON error with the right status, and the connection closes", async () => {
    const cases: [string, number][] = [
      ['GARBAGE\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nhost: x\r\nbad header\r\n\r\n', 400],
      ['POST /api/echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n', 400],
      [`GET / HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
    ];
    for (const [text, status] of cases) {
      const res = await rawRequest(text).response;
      expect(res.status).toBe(status);
      expect(res.headers.connection).toBe('close');
      expect(JSON.parse(res.body).error).toMatchObject({ type: 'invalid_request_error', code: 'malformed_request', message: expect.stringMatching(/^the request is not valid HTTP\/1\.1/) });
    }
    expect((await fetch(url('/api/ping'))).status).toBe(200);
  });

  it('a 503 carries Retry-After and is not logged as a server fault', async () => {
    const before = logged.length;
    const res = await fetch(url('/v1/later'));
    expect([res.status, res.headers.get('retry-after')]).toEqual([503, '5']);
    expect((await res.json()).error).toEqual({ message: 'no donors yet', type: 'service_unavailable', param: null, code: 'no_route' });
    expect(logged.length).toBe(before);
  });
});

describe('the bytes of bodies held at once', () => {
  it('past the budget a body is refused with a 503 to retry; once the others are answered it is taken', async () => {
    // 900 bytes held by a request whose body has not finished arriving (budget: 1500).
    const slow = rawRequest('POST /api/echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n' + `"${'x'.repeat(899)}`, { keepOpen: true });
    await new Promise((r) => setTimeout(r, 100));
    const body = JSON.stringify('y'.repeat(798));
    const refused = await postJson('/api/echo', body);
    expect([refused.status, refused.headers.get('retry-after')]).toEqual([503, '1']);
    expect((await refused.json()).error).toMatchObject({ type: 'service_unavailable', code: 'server_busy' });
    slow.send(`${'x'.repeat(99)}"`);
    expect((await slow.response).status).toBe(201);
    const taken = await postJson('/api/echo', body);
    expect(taken.status).toBe(201);
    expect((await taken.json()).body).toBe('y'.repeat(798));
  });
});

describe('CORS', () => {
  it('API responses allow any origin', async () => {
    const res = await fetch(url('/api/ping'), { headers: { origin: 'http://sdk.test' } });
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
  });

  it('a preflight allows the headers an OpenAI SDK asks for', async () => {
    const res = await fetch(url('/v1/chat/completions'), {
      method: 'OPTIONS',
      headers: { origin: 'http://sdk.test', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type,x-stainless-os' },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-methods')).toMatch(/POST/);
    expect(res.headers.get('access-control-allow-headers')).toBe('authorization,content-type,x-stainless-os');
  });
});

describe('server-sent events', () => {
  it('sends each item as a data event (multi-line items as several data lines), and a failure as a last error event', async () => {
    const res = await fetch(url('/v1/fails-midway'));
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(await res.text()).toBe(
      'data: first\n\n' + `data: ${JSON.stringify({ error: { message: 'prompt: went wrong', type: 'invalid_request_error', param: 'prompt', code: null } })}\n\n`,
    );
  });

  it("a client that disconnects aborts the handler's signal and ends its event source", async () => {
    const received = await new Promise<string>((done, fail) => {
      const req = request(url('/v1/ticks'), (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => {
          text += chunk.toString();
          if (text.includes('tick 2')) {
            req.destroy();
            done(text);
          }
        });
      });
      req.on('error', (err) => (req.destroyed ? undefined : fail(err)));
      req.end();
    });
    expect(received.startsWith('data: tick 0\n\ndata: two\ndata: lines\n\ndata: tick 2\n\n')).toBe(true);
    await expect.poll(() => ticker.finished, { timeout: 2000 }).toBe(true);
    expect(ticker.aborted).toBe(true);
    expect(ticker.produced).toBeLessThan(20);
  });
});
