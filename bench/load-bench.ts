/**
 * The server under load (issue 19): `infermesh serve` as a child process (stories260K f32, one
 * donor in its own process, a local anvil) and `--clients` concurrent clients on loopback for
 * `--seconds`, each sending one request after another: chat completions (a few tokens, as the
 * official client sends them), `/v1/models`, `/api/info` and `/api/peers`. A quarter of the
 * clients share an API key limited to 120 requests a minute. Reports requests per second, p50
 * and p99 latency, the server's peak resident memory, the answers by status (backpressure is
 * 503 with Retry-After when every generation slot is busy, 429 with Retry-After past a key's
 * rate), those refusals that lacked a Retry-After, and `dropped`: requests the server accepted
 * and never answered within `--timeout` (must be 0). Bounded in clients and time.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Agent, request } from 'node:http';
import { machineInfo } from './machine.ts';
import { prepareGridSandbox } from '../testkit/fuzz/grid-sandbox.ts';
import { startServeProcess } from '../testkit/fuzz/serve-process.ts';
import { REPO_ROOT } from '../testkit/model-fixtures.ts';

export interface LoadBenchOptions {
  clients: number;
  seconds: number;
  /** a request unanswered this long is dropped */
  timeoutMs: number;
}

const CLI = join(REPO_ROOT, 'bin', 'infermesh.js');
/** More than any test machine's bench would want: the harness bounds itself. */
const MAX_CLIENTS = 2000;

const quantile = (sorted: number[], q: number) => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]);

export async function loadBench(options: LoadBenchOptions) {
  if (!(options.clients >= 1 && options.clients <= MAX_CLIENTS)) throw new Error(`--clients must be 1..${MAX_CLIENTS}`);
  const sandbox = await prepareGridSandbox();
  const server = await startServeProcess({ modelDir: sandbox.modelDir, dataDir: sandbox.dataDir, donors: 1 });
  try {
    const key = (await promisify(execFile)(process.execPath, [CLI, 'keys', 'create', '--name', 'load', '--rate', '120', '--data', sandbox.dataDir])).stdout.trim();
    // Wait for the donor: a load on a grid that cannot answer measures only 503s.
    for (let i = 0; i < 120; i++) {
      const peers = (await (await fetch(new URL('api/peers', server.url))).json()) as { coverage: number[] };
      if (peers.coverage.every((c) => c > 0)) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    const model = sandbox.manifest.id;
    const agent = new Agent({ keepAlive: true, maxSockets: options.clients });
    /** One request on the shared agent: its status and Retry-After, or a rejection when it was not answered in time. */
    const send = (path: string, body: string | undefined, headers: Record<string, string>) =>
      new Promise<{ status: number; retryAfter?: string; code?: string }>((resolve, reject) => {
        const req = request(new URL(path, server.url), { method: body ? 'POST' : 'GET', agent, headers: { ...headers, ...(body && { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }) }, timeout: options.timeoutMs }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => (res.statusCode ?? 0) >= 400 && chunks.push(c));
          res.on('end', () => {
            let code: string | undefined;
            try {
              code = chunks.length ? (JSON.parse(Buffer.concat(chunks).toString()) as { error?: { code?: string } }).error?.code : undefined;
            } catch {
              code = 'not-json';
            }
            resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] as string | undefined, code });
          });
          res.on('error', reject);
        });
        req.on('timeout', () => req.destroy(new Error('timed out')));
        req.on('error', reject);
        req.end(body);
      });
    const requests = [
      { weight: 4, path: 'v1/chat/completions', body: JSON.stringify({ model, messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 4, temperature: 0 }) },
      { weight: 2, path: 'v1/models' },
      { weight: 2, path: 'api/info' },
      { weight: 1, path: 'api/peers' },
    ];
    const pick = (i: number) => {
      const total = requests.reduce((s, r) => s + r.weight, 0);
      let at = i % total;
      for (const r of requests) if ((at -= r.weight) < 0) return r;
      return requests[0];
    };
    const latencies: number[] = [];
    const byStatus: Record<string, number> = {};
    let dropped = 0;
    let refusedWithoutRetryAfter = 0;
    const startedAt = performance.now();
    const until = startedAt + options.seconds * 1000;
    await Promise.all(
      Array.from({ length: options.clients }, async (_, client) => {
        const keyed = client % 4 === 0;
        for (let n = client; performance.now() < until; n += options.clients) {
          const r = pick(n);
          const t0 = performance.now();
          try {
            const response = await send(r.path, r.body, keyed ? { authorization: `Bearer ${key}` } : {});
            const kind = response.code ? `${response.status} ${response.code}` : String(response.status);
            byStatus[kind] = (byStatus[kind] ?? 0) + 1;
            const refused = response.status === 429 || response.status === 503;
            if (refused && !response.retryAfter) refusedWithoutRetryAfter++;
            latencies.push(performance.now() - t0);
            // A refused client backs off (a tenth of Retry-After, at most 1 s: the load stays on).
            if (refused) await new Promise((res) => setTimeout(res, Math.min(1000, (Number(response.retryAfter) || 1) * 100)));
          } catch {
            dropped++;
          }
        }
      }),
    );
    const seconds = (performance.now() - startedAt) / 1000;
    const sorted = latencies.sort((a, b) => a - b);
    agent.destroy();
    return {
      suite: 'load',
      machine: machineInfo(),
      clients: options.clients,
      seconds: +seconds.toFixed(1),
      requests: latencies.length + dropped,
      requestsPerSecond: +(latencies.length / seconds).toFixed(1),
      p50Ms: +quantile(sorted, 0.5).toFixed(1),
      p99Ms: +quantile(sorted, 0.99).toFixed(1),
      peakRssMiB: server.peakRssMiB(),
      byStatus,
      refusedWithoutRetryAfter,
      dropped,
      crashes: server.crashes.length,
    };
  } finally {
    await server.stop();
    await sandbox.remove();
  }
}
