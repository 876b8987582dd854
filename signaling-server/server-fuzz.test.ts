/**
 * The grid server under fuzz (issue 22): `infermesh serve` as a child process (settlement on,
 * its own anvil), fed a few hundred seeded fast-check cases over every family at once, raw
 * HTTP requests (request lines, targets, headers, bodies, framing) for every endpoint and
 * static root, and coordinator and trust messages over libp2p. Every case must be answered in
 * time, with no 5xx but 503 (with Retry-After), OpenAI-shaped JSON errors on /api and /v1, no
 * byte of a file outside the served folders, no stuck stream and nothing junk stored; the
 * server must be alive at the end. Then a few named examples. A failure prints the seed,
 * fast-check's shrunk batch and each failing case as one line; INFERMESH_FUZZ_SEED picks
 * another seed. The long run is `npm run bench -- fuzz` (bench/fuzz-bench.ts); the harness is
 * testkit/fuzz/.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { COORDINATOR_PROTOCOL, TRUST_PROTOCOL } from '../shared/grid/protocol-ids.ts';
import { encodeCommitment } from '../shared/trust/commitment.ts';
import { ANSWER_DEADLINE_MS, withDeadline } from '../testkit/fuzz/deadline.ts';
import { writeCommitment } from '../testkit/fuzz/commitment-bytes.ts';
import { describeCase, fuzzCaseArbitrary } from '../testkit/fuzz/fuzz-cases.ts';
import { startFuzzRig } from '../testkit/fuzz/fuzz-rig.ts';
import type { FuzzRig } from '../testkit/fuzz/fuzz-rig.ts';
import { sendRawHttp } from '../testkit/fuzz/http-client.ts';
import type { HttpExchange } from '../testkit/fuzz/http-client.ts';
import { errorBodyProblem } from '../testkit/fuzz/http-run.ts';
import { createFuzzPeer } from '../testkit/fuzz/p2p-peers.ts';
import type { FuzzPeer } from '../testkit/fuzz/p2p-peers.ts';
import { auditPeersMessage, auditPeersSnapshot } from '../testkit/fuzz/stored-junk.ts';

const SEED = Number(process.env.INFERMESH_FUZZ_SEED ?? 22);
/** fast-check runs this many batches; a batch is 1 to 16 cases run at once (about 7 on average). */
const BATCHES = 60;
const BATCH_MAX = 16;
/** The property's budget, shrinking included: what is left of the file's minute after start-up and the examples. */
const PROPERTY_BUDGET_MS = 40_000;
/** Fewer cases than this within the budget is a server too slow to fuzz, not a pass. */
const MIN_CASES = 150;

let rig: FuzzRig;
let peer: FuzzPeer;

beforeAll(async () => {
  console.log(`server fuzz: seed ${SEED} (INFERMESH_FUZZ_SEED=${SEED} reproduces this run)`);
  rig = await startFuzzRig({ seed: SEED, concurrency: BATCH_MAX });
  peer = await createFuzzPeer(`${SEED}/examples`);
});

// A case that took the server down fails its own test, not every test after it.
beforeEach(() => rig?.ensureServer());

afterAll(async () => {
  if (peer) await withDeadline(Promise.resolve(peer.node.stop()), 10_000, 'stopping the examples\' peer').catch(() => undefined);
  await rig?.close();
});

const get = (target: string, headers: string[] = []) =>
  sendRawHttp(rig.server.port, { head: Buffer.from([`GET ${target} HTTP/1.1`, 'Host: 127.0.0.1', ...headers, '', ''].join('\r\n'), 'latin1'), method: 'GET' });

function jsonError(exchange: HttpExchange) {
  expect(exchange.outcome).toBe('response');
  const r = exchange.response!;
  expect(errorBodyProblem(r, 'GET')).toBeUndefined();
  return { status: r.status, headers: r.headers, error: (JSON.parse(r.body.toString('utf8')) as { error: Record<string, unknown> }).error };
}

describe('the grid server under malformed requests', () => {
  it.each(['//[', '/v1/models/%ZZ', '/api/vouchers/%ff', '/v1/ledger/peers/%C0'])('answers GET %s with a 400 JSON error and keeps serving', async (target) => {
    const answer = jsonError(await get(target));
    expect(answer.status).toBe(400);
    const next = await get('/v1/models');
    expect(next.response?.status).toBe(200);
  });

  it('answers GET //%2f%c0%ae%c0%ae/etc/passwd, a static path that decodes to no UTF-8, with a 400 and no file', async () => {
    const exchange = await get('//%2f%c0%ae%c0%ae/etc/passwd');
    expect(exchange.response?.status).toBe(400);
    expect(exchange.response?.body.toString('latin1')).not.toContain('root:');
    expect((await get('/v1/models')).response?.status).toBe(200);
  });

  it('answers a Range starting past 2^53 on a package file with 416', async () => {
    const exchange = await get(`/packages/${rig.context.packageId}/block-0.data`, ['Range: bytes=99999999999999999999999-']);
    expect(exchange.response?.status).toBe(416);
  });

  it('answers a chat completion with 503, Retry-After and no_route while no donor serves', async () => {
    const body = Buffer.from(JSON.stringify({ model: rig.context.packageId, messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 4 }));
    const head = Buffer.from(`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
    const answer = jsonError(await sendRawHttp(rig.server.port, { head, body, method: 'POST' }));
    expect(answer.status).toBe(503);
    expect(Number(answer.headers['retry-after'])).toBeGreaterThan(0);
    expect(answer.error.code).toBe('no_route');
    // It says what the grid lacks, and how donors join.
    expect(answer.error.message).toMatch(/no donor has joined the grid \(a donor opens its \/donor\/ page in a browser, or runs `npx infermesh donate <grid URL>`\)$/);
  });

  it('closes coordinator and trust streams that never speak within 10 s', async () => {
    const [coordinator, trust] = await Promise.all([peer.open(rig.server.relayAddr, COORDINATOR_PROTOCOL), peer.open(rig.server.relayAddr, TRUST_PROTOCOL)]);
    try {
      const closed = await Promise.all([coordinator, trust].map((s) => s.until(() => s.closed || s.remoteClosed, ANSWER_DEADLINE_MS)));
      expect(closed).toEqual([true, true]);
    } finally {
      coordinator.abort();
      trust.abort();
    }
  });
});

describe('the grid server under fuzz', () => {
  it(`answers every case in time: no 5xx but 503, JSON errors, no leaked file, no stuck stream, no junk stored (seed ${SEED})`, async () => {
    let ran = 0;
    const batches = fc.array(fuzzCaseArbitrary(rig.context), { minLength: 1, maxLength: BATCH_MAX, size: 'max' });
    await fc.assert(
      fc.asyncProperty(batches, async (batch) => {
        const results = await Promise.all(batch.map((c) => rig.runCase(c)));
        ran += batch.length;
        const failures = results.flatMap((r, i) => r.findings.map((f) => `${f.kind}: ${f.detail}\n      case: ${describeCase(batch[i])}`));
        failures.push(...rig.takeObservedJunk().map((f) => `${f.kind}: ${f.detail}`));
        if (failures.length > 0) throw new Error(`${failures.length} finding(s):\n    ${failures.join('\n    ')}`);
      }),
      // Past the budget, a failure found is reported as shrunk so far; no failure is checked by the count below.
      { seed: SEED, numRuns: BATCHES, plugins: [fc.interruptAfterTimeLimit(PROPERTY_BUDGET_MS)] },
    );
    console.log(`server fuzz: ${ran} cases, seed ${SEED}`);
    expect(ran, `cases run within ${PROPERTY_BUDGET_MS} ms`).toBeGreaterThanOrEqual(MIN_CASES);
  });

  it('is still the process it started as, alive, after the fuzz', () => {
    expect(rig.server.crashes.map((c) => c.stderrTail.trim().split('\n').slice(-5).join('\n'))).toEqual([]);
    expect(rig.server.alive).toBe(true);
  });
});

describe('the fuzz harness', () => {
  it('writes a valid commitment byte for byte as shared/trust/commitment.ts does', () => {
    const fields = {
      packageId: 'p'.repeat(64),
      requestId: 'r-1',
      peerId: '12D3KooWPeuigMJXMh8hCPQxjaB5b9Gu6vBisyyeF6AbP9NkFqSX',
      upstream: '12D3KooWSduQrvudyyKqzMtb2JJKLYNj9aT3azupwehRNeSSCMSX',
      layers: { start: 1, end: 3 },
      stepCount: 7,
      root: new Uint8Array(32).fill(1),
      upstreamRoot: new Uint8Array(32).fill(2),
      upstreamSeal: new Uint8Array(64).fill(3),
      createdAt: 1_700_000_000_000,
    };
    expect(writeCommitment(fields)).toEqual(encodeCommitment({ version: 2, ...fields }));
  });

  it('calls junk what a registry should not hold, and nothing else', () => {
    const me = '12D3KooWPeuigMJXMh8hCPQxjaB5b9Gu6vBisyyeF6AbP9NkFqSX';
    const rules = { pieceKeys: new Set(['block-0.data#0', 'block-0.onnx#0']), nLayers: 5, knownPeers: new Set([me]) };
    const device = { executionProvider: 'wasm', msPerLayer: 5, memoryBytes: 1e9, signature: 's', label: 'l' };
    const clean = { peerId: me, role: 'donor', device, pieces: 2, stats: { requestsServed: 1, tokensServed: 2, tokensPerSecond: 3 }, rtt: { [me]: 4 }, assignment: { start: 0, end: 5 } };
    expect(auditPeersSnapshot({ peers: [clean] }, rules)).toEqual([]);
    const junk = { ...clean, stats: { requestsServed: '1', tokensServed: 2, tokensPerSecond: 3, f0: 1 }, rtt: { '12D3KooWfake0': 1 }, pieces: 3 };
    expect(auditPeersSnapshot({ peers: [junk] }, rules).map((j) => j.rule).sort()).toEqual(['pieces', 'rtt to unknown peers', 'stats fields', 'stats.requestsServed']);
    const relay = `/ip4/127.0.0.1/tcp/1/ws/p2p/${me}/p2p-circuit/webrtc/p2p/`;
    expect(auditPeersMessage({ type: 'peers', peers: [{ peerId: me, addrs: [`${relay}${me}`], have: ['block-0.data#0'] }] }, rules)).toEqual([]);
    const other = '12D3KooWSduQrvudyyKqzMtb2JJKLYNj9aT3azupwehRNeSSCMSX';
    expect(auditPeersMessage({ type: 'peers', peers: [{ peerId: me, addrs: [`${relay}${other}`], have: ['x#0'] }] }, rules).map((j) => j.rule)).toEqual(['addrs not its own', 'have keys']);
  });
});
