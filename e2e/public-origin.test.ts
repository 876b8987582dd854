/**
 * A grid behind an https origin, as an operator puts one on the Internet: a TLS terminator
 * (testkit/tls-proxy.ts, a self-signed certificate Chromium is told to accept) in front of the
 * server's one port, `publicUrl` set to it. Donor pages load over https, are cross-origin
 * isolated with WebGPU, join the relay through wss on that same origin (no other port exists),
 * serve, and the grid generates the local runner's tokens through them. And the same with the
 * server speaking TLS itself (`--tls-cert`/`--tls-key`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../cli/open-checkpoint.ts';
import { localTokenIds, tokenIds } from '../testkit/local-tokens.ts';
import { compileTo, removeTempDirs, STORIES_260K, TOK_512 } from '../testkit/model-fixtures.ts';
import { selfSignedCertificate, startTlsProxy } from '../testkit/tls-proxy.ts';
import type { TlsProxy } from '../testkit/tls-proxy.ts';
import { openDonorTabs } from '../signaling-server/local-grid/donor-tabs.ts';
import type { DonorTabs } from '../signaling-server/local-grid/donor-tabs.ts';
import { startGridServer } from '../signaling-server/grid-server.ts';
import type { GridServer } from '../signaling-server/grid-server.ts';
import type { GridInfo } from '../shared/grid/client.ts';

const PROMPT = 'Once upon a time';
let dir: string;
let proxy: TlsProxy;
let server: GridServer;
let tabs: DonorTabs;

beforeAll(async () => {
  ({ dir } = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'f32'));
  proxy = await startTlsProxy();
  server = await startGridServer({ host: '127.0.0.1', port: 0, publicUrl: new URL(proxy.url), modelDir: dir, maxLayersPerNode: 3 });
  proxy.target(server.http.port);
  tabs = await openDonorTabs(proxy.url, 2, { chromiumArgs: ['--ignore-certificate-errors'] });
  await server.coordinator.waitFor((r) => [...r.peers.values()].filter((p) => p.serving).length === 2, 'both tabs serving');
});

afterAll(async () => {
  await tabs?.close();
  await server?.close();
  await proxy?.close();
  await removeTempDirs();
});

describe('a grid at a public https origin', () => {
  it('advertises its relay at that origin, wss on its port, and the server says so', async () => {
    const info = (await (await fetch(new URL('api/info', server.url))).json()) as GridInfo;
    expect(info.relayAddrs).toEqual([`/dns4/localhost/tcp/${proxy.port}/wss/p2p/${server.relay.peerId}`]);
    expect(server.publicUrl).toBe(proxy.url);
  });

  it('tells anyone what the grid can do, not what its visitors run on (GET /api/peers)', async () => {
    const { peers } = (await (await fetch(new URL('api/peers', server.url))).json()) as { peers: { device?: object; rtt?: object }[] };
    const donors = peers.filter((p) => p.device);
    expect(donors).toHaveLength(2);
    for (const p of donors) {
      expect(Object.keys(p.device!).sort()).toEqual(['executionProvider', 'msPerLayer']);
      expect(p.rtt).toBeUndefined();
    }
  });

  it('answers its root with a page that leads to the donor and chat pages (not a 404)', async () => {
    const home = await fetch(server.url);
    expect(home.status).toBe(200);
    expect(home.headers.get('cross-origin-opener-policy')).toBe('same-origin');
    const html = await home.text();
    expect(html).toContain('href="donor/"');
    expect(html).toContain('href="chat/"');
  });

  it('serves donor pages over https that are cross-origin isolated, with WebGPU, and joined through wss on the same origin', async () => {
    for (const tab of tabs.tabs) {
      const page = await tab.page.evaluate(() => ({ protocol: location.protocol, secure: isSecureContext, isolated: crossOriginIsolated, webgpu: 'gpu' in navigator }));
      expect(page).toEqual({ protocol: 'https:', secure: true, isolated: true, webgpu: true });
      // The relay connection this tab holds is the origin's wss: nothing else was advertised.
      const relayed = await tab.page.evaluate(() => (window as unknown as { donor: { node: { getConnections(): { remoteAddr: { toString(): string } }[] } } }).donor.node.getConnections().map((c) => c.remoteAddr.toString()));
      expect(relayed).toContain(`/dns4/localhost/tcp/${proxy.port}/wss/p2p/${server.relay.peerId}`);
      expect(tab.errors).toEqual([]);
    }
  });

  it('generates the local runner’s greedy tokens through those tabs', { timeout: 120_000 }, async () => {
    const client = await server.client();
    const opts = { maxTokens: 24, temperature: 0, topP: 0.9, seed: 1 };
    expect(await tokenIds(client.generate(PROMPT, opts))).toEqual(await localTokenIds(dir, PROMPT, opts));
    // every tensor hop direct WebRTC between the server's client and the two https tabs
    const hops = client.routeReport()!.hops;
    expect(hops.map((h) => h.transport)).toEqual(['webrtc-direct', 'webrtc-direct', 'webrtc-direct']);
    expect(hops.filter((h) => h.layers).map((h) => h.to).sort()).toEqual([...server.coordinator.registry.peers.values()].filter((p) => p.serving).map((p) => p.peerId).sort());
  });
});

describe('a grid speaking TLS itself (--tls-cert, --tls-key)', () => {
  it('serves an https donor page that is isolated and joins through wss on the same port, and generates through it', { timeout: 120_000 }, async () => {
    const tls = await startGridServer({ host: '127.0.0.1', port: 0, tls: selfSignedCertificate(), modelDir: dir });
    const tab = await openDonorTabs(tls.url, 1, { chromiumArgs: ['--ignore-certificate-errors'] });
    try {
      const port = new URL(tls.url).port;
      expect(tls.url).toBe(`https://127.0.0.1:${port}/`);
      await tls.coordinator.waitFor((r) => [...r.peers.values()].some((p) => p.serving), 'the tab serving');
      const page = await tab.tabs[0].page.evaluate(() => ({ protocol: location.protocol, isolated: crossOriginIsolated }));
      expect(page).toEqual({ protocol: 'https:', isolated: true });
      expect(tls.relay.getMultiaddrs().map(String)).toEqual([`/ip4/127.0.0.1/tcp/${port}/wss/p2p/${tls.relay.peerId}`]);
      // the server's own client reaches it through its loopback port and listener, not its certificate
      const client = await tls.client();
      const ids: number[] = [];
      for await (const t of client.generate(PROMPT, { maxTokens: 8, temperature: 0, topP: 0.9, seed: 1 })) if (t.id !== null) ids.push(t.id);
      expect(ids).toHaveLength(8);
    } finally {
      await tab.close();
      await tls.close();
    }
  });
});
