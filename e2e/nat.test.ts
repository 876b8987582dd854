/**
 * NAT traversal through real NATs (testkit/nat/nat-lab.ts): the grid server and a coturn on a
 * "public" network namespace, donor browsers in home namespaces behind their own NATs.
 * - Two homes behind symmetric NATs (MASQUERADE --random-fully) cannot reach each other: the
 *   grid generates the local runner's tokens through their tabs, and the hop between them is
 *   reported as relayed through TURN, as its selected ICE candidate pair says.
 * - Two homes behind full-cone NATs connect directly with the same STUN server (srflx).
 * A client in the public namespace (testkit/nat/nat-client.ts) generates and reports the route.
 * Skipped, saying why, where namespaces cannot be made (not root, no iptables) or coturn is missing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { openCheckpoint } from '../cli/open-checkpoint.ts';
import { localTokenIds } from '../testkit/local-tokens.ts';
import { compileTo, removeTempDirs, STORIES_260K, tempDir, TOK_512 } from '../testkit/model-fixtures.ts';
import { openDonorTabs } from '../signaling-server/local-grid/donor-tabs.ts';
import type { DonorTabs } from '../signaling-server/local-grid/donor-tabs.ts';
import { chromiumPath } from '../signaling-server/local-grid/chromium.ts';
import { startServeProcess } from '../testkit/fuzz/serve-process.ts';
import type { ServeProcess } from '../testkit/fuzz/serve-process.ts';
import { coturnMissing, startCoturn } from '../testkit/coturn.ts';
import type { Coturn } from '../testkit/coturn.ts';
import { createNatLab, natLabMissing } from '../testkit/nat/nat-lab.ts';
import type { NatHome, NatLab } from '../testkit/nat/nat-lab.ts';
import type { HopReport } from '../shared/grid/route-link.ts';

const PROMPT = 'Once upon a time';
const MAX_TOKENS = 16;
const SECRET = 'nat-test-turn-secret';
const NAT_CLIENT = fileURLToPath(new URL('../testkit/nat/nat-client.ts', import.meta.url));

const missing = natLabMissing() ?? coturnMissing();
if (missing) console.warn(`e2e/nat.test.ts: skipping the NAT traversal test: ${missing}`);

let dir: string;
let lab: NatLab;
let coturn: Coturn;
let server: ServeProcess;
let want: number[];
const opened: DonorTabs[] = [];

/** A donor tab in `home`'s namespace, serving once the grid gave it layers; its peer id. */
async function donorIn(home: NatHome): Promise<{ tabs: DonorTabs; peerId: string }> {
  const origin = new URL(server.url).origin;
  const tabs = await openDonorTabs(server.url, 1, {
    executablePath: lab.wrapper(home.ns, chromiumPath, await tempDir('infermesh-nat-')),
    // The public network has no certificates: its plain-http origin is taken as secure (threads, WebCrypto).
    chromiumArgs: [`--unsafely-treat-insecure-origin-as-secure=${origin}`],
    query: 'ep=wasm',
  });
  opened.push(tabs);
  const page = tabs.tabs[0].page;
  await page.waitForFunction(() => (window as unknown as { donor?: { state(): { status: string } } }).donor?.state().status === 'serving', null, { timeout: 90_000 });
  return { tabs, peerId: ((await tabs.tabs[0].state()) as { peerId: string }).peerId };
}

/** Generates through the grid from the public namespace: token ids and the route's hops. */
function generateFromPublic(): Promise<{ ids: number[]; hops: HopReport[] }> {
  return new Promise((resolve, reject) => {
    const child = lab.spawnIn(lab.publicNs, process.execPath, [NAT_CLIENT, server.url, PROMPT, String(MAX_TOKENS)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    child.once('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`the client exited with ${code}: ${err}`))));
  });
}

/** The route's hop from one of two stages to the other, either way round. */
const hopBetween = (hops: HopReport[], x: string, y: string) => hops.find((h) => [x, y].includes(h.from) && [x, y].includes(h.to));

/** The candidate types of the selected ICE pair of the tab's WebRTC connection to `peerId`. */
function candidatePairIn(tabs: DonorTabs, peerId: string): Promise<{ local: string; remote: string } | null> {
  return tabs.tabs[0].page.evaluate(async (peer) => {
    type Stats = { forEach(cb: (s: Record<string, string>) => void): void };
    const conns = (window as unknown as { donor: { node: { getConnections(): { remotePeer: { toString(): string }; remoteAddr: { toString(): string }; maConn?: { peerConnection?: { getStats(): Promise<Stats> } } }[] } } }).donor.node.getConnections();
    const conn = conns.find((c) => c.remotePeer.toString() === peer && c.remoteAddr.toString().includes('/webrtc') && c.maConn?.peerConnection);
    if (!conn) return null;
    const stats = new Map<string, Record<string, string>>();
    (await conn.maConn!.peerConnection!.getStats()).forEach((s) => stats.set(s.id, s));
    const transport = [...stats.values()].find((s) => s.type === 'transport' && s.selectedCandidatePairId);
    const pair = transport && stats.get(transport.selectedCandidatePairId);
    return pair ? { local: stats.get(pair.localCandidateId)!.candidateType, remote: stats.get(pair.remoteCandidateId)!.candidateType } : null;
  }, peerId);
}

describe.skipIf(missing !== undefined)('a grid through real NATs (network namespaces)', () => {
  beforeAll(async () => {
    ({ dir } = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'f32'));
    want = await localTokenIds(dir, PROMPT, { maxTokens: MAX_TOKENS, temperature: 0, topP: 0.9, seed: 1 });

    lab = createNatLab(`imn${process.pid % 100_000}`, ['symmetric', 'symmetric', 'full-cone', 'full-cone']);
    coturn = await startCoturn(SECRET, await tempDir('infermesh-coturn-'), { ip: lab.publicIp, port: 3478, spawnIn: (c, a) => lab.spawnIn(lab.publicNs, c, a, { stdio: 'ignore' }) });
    server = await startServeProcess({
      modelDir: dir,
      dataDir: await tempDir(),
      netns: lab.publicNs,
      host: lab.publicIp,
      donors: 0,
      args: ['--chain', 'off', '--max-layers-per-node', '3', '--stun', `stun:${lab.publicIp}:3478`, '--turn', coturn.url, '--turn-secret', SECRET],
    });
  }, 120_000);

  afterAll(async () => {
    for (const tabs of opened) await tabs.close().catch(() => undefined);
    await server?.stop();
    coturn?.stop();
    lab?.destroy();
    await removeTempDirs();
  });

  it('generates through two tabs behind symmetric NATs, the hop between them relayed through TURN', { timeout: 180_000 }, async () => {
    const [a, b] = await Promise.all(lab.homes.filter((h) => h.kind === 'symmetric').map(donorIn));
    const { ids, hops } = await generateFromPublic();
    expect(ids).toEqual(want);
    const between = hopBetween(hops, a.peerId, b.peerId);
    expect(between?.transport).toBe('webrtc-turn');
    // The tab's own view of that link: a relay candidate at one end at least.
    const pair = await candidatePairIn(between!.from === a.peerId ? a.tabs : b.tabs, between!.to);
    console.log(`symmetric NATs: route ${hops.map((h) => h.transport).join(', ')}; the tabs' selected pair ${pair?.local} -> ${pair?.remote}`);
    expect([pair?.local, pair?.remote]).toContain('relay');
    await a.tabs.close();
    await b.tabs.close();
  });

  it('connects two tabs behind full-cone NATs directly, on server-reflexive candidates from the same STUN server', { timeout: 180_000 }, async () => {
    const [c, d] = await Promise.all(lab.homes.filter((h) => h.kind === 'full-cone').map(donorIn));
    const { ids, hops } = await generateFromPublic();
    expect(ids).toEqual(want);
    const between = hopBetween(hops, c.peerId, d.peerId);
    expect(between?.transport).toBe('webrtc-direct');
    const pair = await candidatePairIn(between!.from === c.peerId ? c.tabs : d.tabs, between!.to);
    console.log(`full-cone NATs: route ${hops.map((h) => h.transport).join(', ')}; the tabs' selected pair ${pair?.local} -> ${pair?.remote}`);
    expect(pair).not.toBeNull();
    expect([pair!.local, pair!.remote]).not.toContain('relay');
    // Private addresses are unreachable across homes: the far end is its NAT's public mapping.
    expect(['srflx', 'prflx']).toContain(pair!.remote);
  });
});
