/**
 * The static file server: files under URL prefixes with the cross-origin-isolation headers, and
 * byte ranges as a BitTorrent web seed needs them (206 with Content-Range, 416 past the end).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTempDirs, tempDir } from '../../testkit/model-fixtures.ts';
import { parseByteRange, startStaticServer, type StaticServer } from './static-files.ts';

const BYTES = Uint8Array.from({ length: 1000 }, (_, i) => i % 251);
let server: StaticServer;

beforeAll(async () => {
  const root = await tempDir();
  await mkdir(join(root, 'pkg'));
  await writeFile(join(root, 'pkg', 'block-0.data'), BYTES);
  await writeFile(join(root, 'pkg', 'empty.bin'), new Uint8Array(0));
  await mkdir(join(root, 'app', 'page'), { recursive: true });
  await writeFile(join(root, 'app', 'page', 'index.html'), '<p>hi</p>');
  await writeFile(join(root, 'secret.txt'), 'no');
  server = await startStaticServer({ routes: { '/packages/': join(root, 'pkg'), '/': join(root, 'app') } });
});
afterAll(async () => {
  await server.close();
  await removeTempDirs();
});

const get = (path: string, headers: Record<string, string> = {}, method = 'GET') => fetch(new URL(path, server.url), { headers, method });

/** A raw GET: fetch() would normalise `..` away before sending it. */
function rawStatus(path: string): Promise<number> {
  return new Promise((done, fail) => {
    const req = request(new URL(server.url), { path }, (res) => {
      res.resume();
      done(res.statusCode ?? 0);
    });
    req.on('error', fail);
    req.end();
  });
}

describe('whole files', () => {
  it('serves a file with its type, length and the COOP/COEP/CORP/CORS headers', async () => {
    const res = await get('/packages/block-0.data');
    expect(res.status).toBe(200);
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(BYTES);
    expect(Object.fromEntries(['content-type', 'content-length', 'accept-ranges', 'cross-origin-opener-policy', 'cross-origin-embedder-policy', 'cross-origin-resource-policy', 'access-control-allow-origin'].map((h) => [h, res.headers.get(h)]))).toEqual({
      'content-type': 'application/octet-stream',
      'content-length': '1000',
      'accept-ranges': 'bytes',
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-embedder-policy': 'require-corp',
      'cross-origin-resource-policy': 'cross-origin',
      'access-control-allow-origin': '*',
    });
  });

  it("serves a folder's index.html and redirects the folder without its slash", async () => {
    const page = await get('/page/');
    expect([page.status, page.headers.get('content-type'), await page.text()]).toEqual([200, 'text/html; charset=utf-8', '<p>hi</p>']);
    const redirect = await fetch(new URL('/page?x=1', server.url), { redirect: 'manual' });
    expect([redirect.status, redirect.headers.get('location')]).toEqual([301, '/page/?x=1']);
  });

  it('answers 404 for a missing file and 403 for `..`, raw or percent-encoded', async () => {
    expect((await get('/packages/nope.data')).status).toBe(404);
    for (const path of ['/packages/../secret.txt', '/packages/%2e%2e/secret.txt', '/packages/..%2fsecret.txt']) expect(await rawStatus(path)).toBe(403);
  });

  it('serves no file outside its folders, however the path is spelled', async () => {
    const attempts = [
      '//secret.txt', '/packages//../secret.txt', '/packages/%252e%252e/secret.txt', '/packages/%2E%2E%2Fsecret.txt', '/packages/..%5csecret.txt',
      '/packages/%c0%ae%c0%ae/secret.txt', '/packages/.%2e/secret.txt', '/%2e%2e/secret.txt', '//%2f%c0%ae%c0%ae/etc/passwd', '/packages/%00/../secret.txt',
      '/packages/....//secret.txt', '/..;/secret.txt', '//[', '/page/..', '/packages/%ZZ',
    ];
    for (const path of attempts) {
      const status = await rawStatus(path);
      expect({ path, status }).toEqual({ path, status: expect.toSatisfy((s: number) => [400, 403, 404].includes(s)) });
    }
  });

  it('refuses methods other than GET and HEAD', async () => {
    expect((await get('/packages/block-0.data', {}, 'POST')).status).toBe(405);
  });
});

describe('byte ranges', () => {
  it('bytes=a-b answers 206 with exactly those bytes and a Content-Range', async () => {
    const res = await get('/packages/block-0.data', { range: 'bytes=100-199' });
    expect(res.status).toBe(206);
    expect(res.headers.get('content-range')).toBe('bytes 100-199/1000');
    expect(res.headers.get('content-length')).toBe('100');
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(BYTES.slice(100, 200));
  });

  it('an open end (bytes=a-) and a suffix (bytes=-n) reach the end of the file; an end past it is clipped', async () => {
    const open = await get('/packages/block-0.data', { range: 'bytes=990-' });
    expect([open.status, open.headers.get('content-range')]).toEqual([206, 'bytes 990-999/1000']);
    expect(new Uint8Array(await open.arrayBuffer())).toEqual(BYTES.slice(990));
    const suffix = await get('/packages/block-0.data', { range: 'bytes=-5' });
    expect(new Uint8Array(await suffix.arrayBuffer())).toEqual(BYTES.slice(995));
    const clipped = await get('/packages/block-0.data', { range: 'bytes=900-5000' });
    expect([clipped.status, clipped.headers.get('content-range')]).toEqual([206, 'bytes 900-999/1000']);
    await clipped.arrayBuffer();
  });

  it('a range starting past the end answers 416 with the size, an open end included', async () => {
    const res = await get('/packages/block-0.data', { range: 'bytes=1000-1100' });
    expect(res.status).toBe(416);
    expect(res.headers.get('content-range')).toBe('bytes */1000');
    expect((await get('/packages/empty.bin', { range: 'bytes=0-0' })).status).toBe(416);
    // A first byte beyond any file, with the last left open: past the end, not a reversed range.
    for (const range of ['bytes=1000-', 'bytes=99999999999999999999999-']) {
      const open = await get('/packages/block-0.data', { range });
      expect({ range, status: open.status, contentRange: open.headers.get('content-range') }).toEqual({ range, status: 416, contentRange: 'bytes */1000' });
    }
  });

  it('HEAD with a range answers the 206 headers without a body', async () => {
    const res = await get('/packages/block-0.data', { range: 'bytes=0-9' }, 'HEAD');
    expect([res.status, res.headers.get('content-length'), res.headers.get('content-range')]).toEqual([206, '10', 'bytes 0-9/1000']);
    expect((await res.arrayBuffer()).byteLength).toBe(0);
  });

  it('several ranges, other units and malformed values are ignored: the whole file, 200', async () => {
    for (const range of ['bytes=0-1,5-6', 'items=0-1', 'bytes=5-2', 'bytes=x-y']) {
      const res = await get('/packages/block-0.data', { range });
      expect({ range, status: res.status }).toEqual({ range, status: 200 });
      expect((await res.arrayBuffer()).byteLength).toBe(1000);
    }
  });

  it('a CORS preflight for the Range header is allowed', async () => {
    const res = await get('/packages/block-0.data', { origin: 'http://elsewhere.test', 'access-control-request-method': 'GET', 'access-control-request-headers': 'range' }, 'OPTIONS');
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-headers')).toBe('range');
    expect(res.headers.get('access-control-expose-headers')).toMatch(/content-range/);
  });
});

describe('parseByteRange', () => {
  it('reads the forms RFC 9110 defines for a single range', () => {
    expect(parseByteRange('bytes=0-0', 10)).toEqual({ start: 0, end: 0 });
    expect(parseByteRange('bytes=-20', 10)).toEqual({ start: 0, end: 9 });
    expect(parseByteRange('bytes=-0', 10)).toBe('unsatisfiable');
    expect(parseByteRange(undefined, 10)).toBeUndefined();
  });
});
