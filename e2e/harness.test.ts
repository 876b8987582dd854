/**
 * The browser test harness itself: the built engine page runs crossOriginIsolated with a WebGPU
 * adapter, and the static server serves what onnxruntime-web needs and nothing outside its roots.
 */
import { request } from 'node:http';
import { describe, expect, onTestFinished, test } from 'vitest';
import { openApp, ortDistDir } from '../testkit/browser-app.ts';
import { startStaticServer } from '../signaling-server/http/static-files.ts';

/** A raw GET: fetch() would normalise `..` away before sending it. */
function rawGet(baseUrl: string, path: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((done, fail) => {
    const req = request(new URL(baseUrl), { path, method: 'GET' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => done({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', fail);
    });
    req.on('error', fail);
    req.end();
  });
}

describe('engine test page', () => {
  test('runs crossOriginIsolated with a WebGPU adapter (SwiftShader without a GPU)', async () => {
    const app = await openApp('test/engine-test/', { waitFor: 'window.harness?.ready === true' });
    onTestFinished(() => app.close());
    const report = await app.page.evaluate(() => window.harness!.gpu());
    expect(report.crossOriginIsolated).toBe(true);
    expect(report.adapter).not.toBeNull();
    expect(report.adapter!.architecture).toBeTruthy();
    if (report.adapter!.vendor === 'google') expect(report.adapter!.architecture).toBe('swiftshader');
    expect(app.errors).toEqual([]);
  });
});

describe('static server', () => {
  test('refuses `..` traversal and serves .wasm as application/wasm with COOP/COEP', async () => {
    const server = await startStaticServer({ routes: { '/ort/': ortDistDir } });
    onTestFinished(() => server.close());

    for (const path of ['/ort/../package.json', '/ort/../../package.json', '/ort/%2e%2e/package.json', '/ort/..%2fpackage.json']) {
      const res = await rawGet(server.url, path);
      expect({ path, status: res.status }).toEqual({ path, status: 403 });
    }

    const wasm = await fetch(new URL('ort/ort-wasm-simd-threaded.wasm', server.url));
    expect(wasm.status).toBe(200);
    expect(wasm.headers.get('content-type')).toBe('application/wasm');
    expect(wasm.headers.get('cross-origin-opener-policy')).toBe('same-origin');
    expect(wasm.headers.get('cross-origin-embedder-policy')).toBe('require-corp');
    expect(wasm.headers.get('cross-origin-resource-policy')).toBe('cross-origin');
    const bytes = new Uint8Array(await wasm.arrayBuffer());
    expect([...bytes.subarray(0, 4)]).toEqual([0x00, 0x61, 0x73, 0x6d]); // "\0asm"

    const missing = await fetch(new URL('ort/no-such-file.wasm', server.url));
    expect(missing.status).toBe(404);
  });
});
