/**
 * A grid for the churn tests and `bench churn`: the grid server (with the test pages), donor
 * tabs on the churn donor page, each in a headless Chromium of its own (so one can be killed
 * without the others), and a Node grid client. Tabs that a fault took are replaced by fresh
 * ones, so the grid keeps its replicas from one fault to the next.
 */
import * as ort from 'onnxruntime-node';
import type { Browser, Page } from 'playwright-core';
import { connectGrid } from '../../shared/grid/client.ts';
import type { ConnectOptions, GridClient } from '../../shared/grid/client.ts';
import type { OrtModule } from '../../shared/runtime/ort.ts';
import { startGridServer } from '../../signaling-server/grid-server.ts';
import type { GridServer } from '../../signaling-server/grid-server.ts';
import { launchChromium } from '../../signaling-server/local-grid/chromium.ts';
import { waitForLinks } from '../../signaling-server/local-grid/demo-grid.ts';
import { CHURN_DONOR, TEST_PAGE_ROUTES } from '../pages/paths.ts';

export interface ChurnTab {
  browser: Browser;
  page: Page;
  peerId: string;
  /** console errors and uncaught exceptions of the page */
  errors: string[];
}

export interface ChurnGridOptions {
  modelDir: string;
  tabs: number;
  maxLayersPerNode: number;
  /** every layer served by at least this many tabs before a test goes on (default 2: one standby per hop) */
  replicas?: number;
  /** the client's recovery settings */
  recovery?: ConnectOptions['recovery'];
  log?: (line: string) => void;
}

export interface ChurnGrid {
  server: GridServer;
  client: GridClient;
  tabs: ChurnTab[];
  tabOf(peerId: string): ChurnTab;
  /** opens one more tab, in a browser of its own, and waits until it serves or idles with no assignment */
  addTab(): Promise<ChurnTab>;
  /** closes a tab's browser (whatever a fault left of it) and forgets the tab */
  removeTab(tab: ChurnTab): Promise<void>;
  /** resolves when every tab serves (or has no assignment), every layer has `replicas` stages and their links are measured */
  settle(timeoutMs?: number): Promise<void>;
  /** resolves when every layer has `replicas` serving stages whose links are measured (tabs still joining not waited for) */
  ready(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

const POLL_MS = 100;

export async function startChurnGrid(options: ChurnGridOptions): Promise<ChurnGrid> {
  const replicas = options.replicas ?? 2;
  const log = options.log ?? (() => undefined);
  const server = await startGridServer({ host: '127.0.0.1', port: 0, modelDir: options.modelDir, maxLayersPerNode: options.maxLayersPerNode, staticRoutes: TEST_PAGE_ROUTES }, { log });
  const tabs: ChurnTab[] = [];
  let client: GridClient | undefined;

  async function addTab(): Promise<ChurnTab> {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (err) => errors.push(`${err.message} ${err.stack?.split('\n').slice(1, 4).join(' ') ?? ''}`));
      page.on('console', (msg) => {
        if (msg.type() === 'error') errors.push(msg.text());
      });
      const response = await page.goto(new URL(`${CHURN_DONOR}?ep=wasm`, server.url).href);
      if (!response?.ok()) throw new Error(`${CHURN_DONOR} answered ${response?.status() ?? 'nothing'}; is dist/test-web built?`);
      await page.waitForFunction(() => window.donor?.state().peerId, null, { timeout: 60_000 });
      const peerId = (await page.evaluate(() => window.donor!.state().peerId)) as string;
      const tab = { browser, page, peerId, errors };
      tabs.push(tab);
      log(`tab ${peerId.slice(-6)} opened`);
      return tab;
    } catch (err) {
      await browser.close();
      throw err;
    }
  }

  async function ready(timeoutMs = 120_000): Promise<void> {
    const registry = server.coordinator.registry;
    const deadline = performance.now() + timeoutMs;
    while (!registry.coverage().every((c) => c >= replicas)) {
      if (performance.now() > deadline) throw new Error(`the churn grid had no ${replicas} stages per layer after ${timeoutMs} ms (coverage per layer ${registry.coverage().join(',')})`);
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    if (!(await waitForLinks(server, Math.max(0, deadline - performance.now())))) throw new Error('the serving tabs did not measure their links to each other in time');
  }

  async function settle(timeoutMs = 120_000): Promise<void> {
    const registry = server.coordinator.registry;
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const donors = [...registry.peers.values()].filter((p) => p.role === 'donor');
      const joined = tabs.every((t) => donors.some((d) => d.peerId === t.peerId));
      if (joined && donors.every((d) => d.serving || !d.assignment) && registry.coverage().every((c) => c >= replicas)) break;
      if (performance.now() > deadline) {
        const range = (l?: { start: number; end: number }) => (l ? `${l.start}..${l.end - 1}` : 'none');
        const states = donors.map((d) => `${d.peerId.slice(-6)} assigned ${range(d.assignment)} serving ${range(d.serving)} pieces ${d.have.size}`);
        const pages = await Promise.all(
          tabs.map(async (t) => {
            const seen = await t.page.evaluate(() => ({ status: window.donor?.state().status, errors: window.donorErrors })).catch((err: Error) => ({ status: `unreadable (${err.message.split('\n')[0]})`, errors: [] }));
            return `${t.peerId.slice(-6)} ${seen.status}${seen.errors.length ? ` (${seen.errors.join(' | ')})` : ''}${t.errors.length ? ` page errors: ${t.errors.slice(-3).join(' | ')}` : ''}`;
          }),
        );
        throw new Error(`the churn grid did not settle in ${timeoutMs} ms (coverage per layer ${registry.coverage().join(',')}; tabs: ${pages.join('; ')}; donors: ${states.join('; ')})`);
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    if (!(await waitForLinks(server, Math.max(0, deadline - performance.now())))) throw new Error('the tabs did not measure their links to each other in time');
  }

  const close = async () => {
    await client?.close().catch(() => undefined);
    await Promise.all(tabs.map((t) => t.browser.close().catch(() => undefined)));
    await server.close();
  };
  try {
    for (let i = 0; i < options.tabs; i++) await addTab();
    await settle();
    client = await connectGrid({ url: server.url, model: server.manifest.id, recovery: options.recovery }, { ort: ort as unknown as OrtModule });
  } catch (err) {
    await close();
    throw err;
  }
  return {
    server,
    client,
    tabs,
    tabOf(peerId) {
      const tab = tabs.find((t) => t.peerId === peerId);
      if (!tab) throw new Error(`no churn tab is peer ${peerId}`);
      return tab;
    },
    addTab,
    async removeTab(tab) {
      tabs.splice(tabs.indexOf(tab), 1);
      await tab.browser.close().catch(() => undefined);
    },
    settle,
    ready,
    close,
  };
}
