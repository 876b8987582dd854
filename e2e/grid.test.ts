/**
 * The grid end to end: the real server (relay, coordinator, HTTP), four real Chromium donor
 * tabs joined over WebRTC, stories260K split so no tab holds more than 2 of its 5 layers, and
 * the Node SDK generating through them. The tokens equal the local runner's; every tensor hop
 * is direct WebRTC; a tab whose server connection drops joins again without a reload;
 * generation completes after the relay is stopped.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../cli/open-checkpoint.ts';
import { openLocalPipeline } from '../worker/node/local-package.ts';
import { compileTo, removeTempDirs, STORIES_260K, TOK_512 } from '../testkit/model-fixtures.ts';
import { openDonorTabs } from '../signaling-server/local-grid/donor-tabs.ts';
import type { DonorTabs } from '../signaling-server/local-grid/donor-tabs.ts';
import { startGridServer } from '../signaling-server/grid-server.ts';
import type { GridServer } from '../signaling-server/grid-server.ts';
import { connect } from '../packages/sdk/src/node.ts';
import { defaultThreads } from '../worker/engine.ts';
import { peerIdFromString } from '@libp2p/peer-id';
import type { GridClient } from '../packages/sdk/src/node.ts';

const PROMPT = 'Once upon a time';
let dir: string;
let server: GridServer;
let tabs: DonorTabs;
let client: GridClient;

beforeAll(async () => {
  ({ dir } = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'f32'));
  server = await startGridServer({ host: '127.0.0.1', port: 0, modelDir: dir, maxLayersPerNode: 2 });
  tabs = await openDonorTabs(server.url, 4);
  await server.coordinator.waitFor((r) => [...r.peers.values()].filter((p) => p.serving).length === 4, 'all four tabs serving');
  client = await connect({ url: server.url });
});

afterAll(async () => {
  await client?.close();
  await tabs?.close();
  await server?.close();
  await removeTempDirs();
});

async function generateText(gen: AsyncIterable<{ text: string; id: number | null }>) {
  let text = '';
  let tokens = 0;
  for await (const t of gen) {
    text += t.text;
    if (t.id !== null) tokens += 1;
  }
  return { text, tokens };
}

describe('a grid of four Chromium tabs', () => {
  it('splits stories260K so no tab holds more than 2 layers and every layer is served', async () => {
    const peers = [...server.coordinator.registry.peers.values()].filter((p) => p.role === 'donor');
    expect(peers).toHaveLength(4);
    for (const p of peers) expect(p.serving!.end - p.serving!.start).toBeLessThanOrEqual(2);
    expect(server.coordinator.registry.coverage().every((c) => c >= 1)).toBe(true);
    for (const tab of tabs.tabs) expect(await tab.donorErrors()).toEqual([]);
  });

  it('runs each tab on half the machine\'s cores by default, cross-origin isolated, and shows it', async () => {
    for (const tab of tabs.tabs) {
      const { threads } = (await tab.state()) as { threads: { threads: number; cores: number; isolated: boolean } };
      expect(threads).toEqual({ threads: defaultThreads(threads.cores), cores: threads.cores, isolated: true });
      expect(await tab.page.getByTestId('threads').textContent()).toBe(String(threads.threads));
      expect(await tab.page.getByTestId('cores').textContent()).toBe(String(threads.cores));
    }
  });

  it('generates 100 greedy tokens through the SDK equal to `infermesh generate`, every hop direct WebRTC', async () => {
    const opts = { maxTokens: 100, temperature: 0, topP: 0.9, seed: 42 };
    const local = await openLocalPipeline(dir, { stages: 1 });
    const expected = await generateText(local.pipeline.generate(PROMPT, opts));
    await local.release();
    const got = await generateText(client.generate(PROMPT, opts));
    expect(got.text).toBe(expected.text);
    expect(got.tokens).toBe(expected.tokens);
    const report = client.routeReport()!;
    expect(report.hops.length).toBeGreaterThanOrEqual(4);
    expect(report.hops.every((h) => h.transport === 'webrtc-direct')).toBe(true);
    for (const hop of report.hops.slice(0, -1)) expect(hop.layers!.end - hop.layers!.start).toBeLessThanOrEqual(2);
  });

  it('shows on each donor page what the tab costs: its engine\'s share of compute time and the memory it holds', async () => {
    for (const tab of tabs.tabs) {
      const cost = async () => ((await tab.state()) as { cost?: { computePercent: number; memoryBytes: number } }).cost;
      await expect.poll(cost, { timeout: 15_000 }).toBeDefined();
      const { computePercent, memoryBytes } = (await cost())!;
      expect(computePercent).toBeGreaterThanOrEqual(0);
      expect(computePercent).toBeLessThanOrEqual(100);
      expect(memoryBytes).toBeGreaterThan(0);
      expect(await tab.page.getByTestId('cost-memory').textContent()).toMatch(/^[\d.]+ (B|KiB|MiB|GiB) of memory$/);
      expect(await tab.page.getByTestId('cost-compute').textContent()).toMatch(/^computing \d+% of the time,$/);
    }
  });

  it('leaves an idle donor page\'s document untouched: nothing is laid out or painted again while nothing changed', async () => {
    await server.validator.idle();
    for (const tab of tabs.tabs) await expect.poll(async () => ((await tab.state()) as { tokensPerSecond: number }).tokensPerSecond, { timeout: 15_000 }).toBe(0);
    // An idle tab still shows its figures every IDLE_STATS_EVERY seconds (web/donor/donor.ts): over
    // that long and a second more, none of them is written again unless it changed. The chart
    // scrolls on by design; it is left out.
    const writes = await Promise.all(tabs.tabs.map((tab) => tab.page.evaluate(() => new Promise<string[]>((resolve) => {
      const app = document.getElementById('app')!;
      const chart = app.querySelector('[data-testid="throughput-chart"]')!;
      const seen: string[] = [];
      const observer = new MutationObserver((records) => {
        for (const r of records) {
          if (chart.contains(r.target)) continue;
          const el = r.target instanceof Element ? r.target : r.target.parentElement;
          seen.push(`${r.type} ${el?.closest('[data-testid]')?.getAttribute('data-testid') ?? el?.tagName}`);
        }
      });
      observer.observe(app, { subtree: true, childList: true, characterData: true, attributes: true });
      setTimeout(() => (observer.disconnect(), resolve(seen)), 11_000);
    }))));
    expect(writes).toEqual(tabs.tabs.map(() => []));
  });

  it('answers a streaming chat request on the OpenAI endpoint through the grid (plain HTTP client)', async () => {
    const response = await fetch(`${server.url}v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ messages: [{ role: 'user', content: 'Tell me a story.' }], stream: true, max_tokens: 30, temperature: 0 }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/event-stream');
    const events = (await response.text()).split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => e.slice(6));
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    expect(chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true);
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    const content = chunks.map((c) => c.choices[0].delta.content ?? '').join('');
    expect(content.length).toBeGreaterThan(20);
    expect(['stop', 'length']).toContain(chunks.at(-1).choices[0].finish_reason);
  });

  it('generates the same text with the browser SDK in a Chromium tab (the chat page)', async () => {
    const opts = { maxTokens: 30, temperature: 0, topP: 0.9, seed: 42 };
    const expected = await generateText(client.generate(PROMPT, opts));
    const page = await (await tabs.browser.newContext()).newPage();
    await page.goto(`${server.url}chat/`);
    await page.waitForFunction(() => window.chatPage !== undefined, null, { timeout: 60_000 });
    // It says the grid is ready, from the server's /api/peers (web/chat/grid-status.ts).
    await page.waitForFunction(() => /^Ready: \d donors? serves? all \d+ layers/.test(document.getElementById('status')!.textContent ?? ''), null, { timeout: 10_000 });
    const got = await page.evaluate(([prompt, max]) => window.chatPage!.generate(prompt as string, max as number), [PROMPT, 30]);
    expect(got.text).toBe(expected.text);
    expect(got.tokens).toBe(expected.tokens);
    expect((got.route as { hops: { transport: string }[] }).hops.every((h) => h.transport === 'webrtc-direct')).toBe(true);
    await page.context().close();
  });

  it('refuses a prompt longer than the context, to the SDK caller and over HTTP, and keeps serving', async () => {
    const long = 'Once upon a time there was a cat. '.repeat(80);
    await expect(generateText(client.generate(long, { maxTokens: 5 }))).rejects.toThrow(/prompt is \d+ tokens but the model's context is 512/);
    const response = await fetch(`${server.url}v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: long, max_tokens: 5 }),
    });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: { message: string } }).error.message).toMatch(/context/);
    expect((await generateText(client.generate(PROMPT, { maxTokens: 5, temperature: 0 }))).tokens).toBe(5);
  });

  it('a tab whose connection to the server drops joins again, keeps its layers without a reload, and serves on', async () => {
    const tab = tabs.tabs[0];
    const before = (await tab.state()) as { peerId: string; layers: { start: number; end: number }; tokensServed: number };
    const peerId = peerIdFromString(before.peerId);
    const served = server.coordinator.registry.peers.get(before.peerId)!.serving;
    expect(served).toEqual(before.layers);
    // What the relay's connection monitor once did to busy tabs: the tab's WebSocket, and with it its coordinator session, cut.
    server.relay.getConnections(peerId).forEach((c) => c.abort(new Error('cut by the test')));
    await expect.poll(async () => ((await tab.state()) as { coordinator?: unknown }).coordinator, { timeout: 20_000 }).toEqual({ connected: true, rejoins: 1 });
    await server.coordinator.waitFor((r) => r.peers.get(before.peerId)?.serving?.start === served!.start, 'the tab serving again', 10_000);
    const after = (await tab.state()) as typeof before & { status: string };
    expect(after).toMatchObject({ status: 'serving', layers: before.layers });
    // A reload would start a new stage server, whose counts start from zero.
    expect(after.tokensServed).toBeGreaterThanOrEqual(before.tokensServed);
    expect(await tab.page.getByTestId('coordinator').textContent()).toBe('connected, rejoined 1×');
    expect(await tab.donorErrors()).toEqual([]);
    expect((await generateText(client.generate(PROMPT, { maxTokens: 20, temperature: 0 }))).tokens).toBe(20);
  });

  it('completes a generation after the relay is stopped once the route is set up', async () => {
    const opts = { maxTokens: 40, temperature: 0, topP: 0.9, seed: 42 };
    const before = await generateText(client.generate(PROMPT, opts));
    await server.relay.stop();
    const after = await generateText(client.generate(PROMPT, opts));
    expect(after.text).toBe(before.text);
    expect(client.routeReport()!.hops.every((h) => h.transport === 'webrtc-direct')).toBe(true);
  });

  it('honours ?threads= and the visitor\'s choice on the page, and refuses a count the machine does not have, by name', async () => {
    // Shown before the tab joins (the relay is down by now: these tabs never join).
    const cores = ((await tabs.tabs[0].state()) as { threads: { cores: number } }).threads.cores;
    const chosen = await tabs.open(`threads=${cores}`);
    const shown = async () => [await chosen.page.getByTestId('threads').textContent(), await chosen.page.getByTestId('cores').textContent()];
    await expect.poll(shown, { timeout: 20_000 }).toEqual([String(cores), String(cores)]);
    // Picking 1 on the page keeps the choice and reloads without ?threads=: the new engine starts with one thread.
    await Promise.all([chosen.page.waitForURL((url) => !url.search.includes('threads=')), chosen.page.getByTestId('threads-choice').selectOption('1')]);
    await expect.poll(shown, { timeout: 20_000 }).toEqual(['1', String(cores)]);
    await chosen.page.evaluate(() => localStorage.clear());
    await chosen.page.close();
    const refused = await tabs.open(`threads=${cores + 1}`);
    await refused.page.waitForSelector('[data-testid="error"]:not([hidden])', { timeout: 30_000 });
    expect(await refused.page.textContent('[data-testid="error"]')).toBe(`UsageError: threads must be a whole number from 1 to this machine's ${cores} cores, got ${cores + 1}`);
    await refused.page.close();
  });
});
