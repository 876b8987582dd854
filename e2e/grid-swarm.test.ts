/**
 * The weight swarm with real tabs: donors fetch their layers' pieces from each other over
 * direct WebRTC (the server is only the web seed for pieces no peer holds), check every piece's
 * SHA-256 before storing it in IndexedDB, and drop a peer that sends a corrupted piece.
 *
 * Two grids of stories260K. In the first, four honest tabs hold at most 2 of the 5 layers each
 * and a fifth joins later: it must get at least half of its pieces from peers. In the second,
 * every tab holds the whole model; the second tab serves corrupted pieces, so a third, which
 * spreads its requests over both holders, must catch them, drop that peer and complete.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../cli/open-checkpoint.ts';
import { compileTo, removeTempDirs, STORIES_260K, TOK_512 } from '../testkit/model-fixtures.ts';
import { openDonorTabs } from '../signaling-server/local-grid/donor-tabs.ts';
import type { DonorTab, DonorTabs } from '../signaling-server/local-grid/donor-tabs.ts';
import { startGridServer } from '../signaling-server/grid-server.ts';
import type { SwarmProgress } from '../shared/swarm/swarm-fetcher.ts';
import type { GridServer } from '../signaling-server/grid-server.ts';
import { FAULTY_DONOR, TEST_PAGE_ROUTES } from '../testkit/pages/paths.ts';

interface TabState {
  status: string;
  peerId: string;
  layers?: { start: number; end: number };
  download?: SwarmProgress;
}

async function openServing(tabs: DonorTabs, query = '', page?: string): Promise<{ tab: DonorTab; state: TabState }> {
  const tab = await tabs.open(query, page);
  await tab.page.waitForFunction(() => (window as unknown as { donor?: { state(): { status: string } } }).donor?.state().status === 'serving', null, { timeout: 120_000 });
  return { tab, state: (await tab.state()) as unknown as TabState };
}

let dir: string;
beforeAll(async () => {
  ({ dir } = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'f32'));
});
afterAll(removeTempDirs);

async function startGrid(maxLayersPerNode?: number) {
  const server = await startGridServer({ host: '127.0.0.1', port: 0, modelDir: dir, maxLayersPerNode, staticRoutes: TEST_PAGE_ROUTES });
  const tabs = await openDonorTabs(server.url, 0);
  return {
    server,
    tabs,
    async close() {
      await tabs.close();
      await server.close();
    },
  };
}

describe('a tab joining a split grid', () => {
  let grid: Awaited<ReturnType<typeof startGrid>>;
  let joined: DonorTab;
  beforeAll(async () => {
    grid = await startGrid(2);
    for (let i = 0; i < 4; i++) await openServing(grid.tabs);
  });
  afterAll(() => grid?.close());

  it('gets at least half of its pieces from peers, every one hash-checked', async () => {
    const { tab, state } = await openServing(grid.tabs);
    const d = state.download!;
    expect(d.total).toBeGreaterThan(0);
    expect(d.verified + d.resumed).toBe(d.total);
    expect(d.badPieces).toBe(0);
    expect(d.fromPeers).toBeGreaterThanOrEqual(d.total / 2);
    expect(d.fromPeers + d.fromWebSeed).toBe(d.verified);
    expect(await tab.donorErrors()).toEqual([]);
    joined = tab;
  });

  it('resumes from the pieces stored in IndexedDB after a reload, fetching nothing again', async () => {
    await joined.page.reload();
    await joined.page.waitForFunction(() => (window as unknown as { donor?: { state(): { status: string } } }).donor?.state().status === 'serving', null, { timeout: 120_000 });
    const d = ((await joined.state()) as unknown as TabState).download!;
    expect(d.resumed).toBe(d.total);
    expect(d.verified).toBe(0);
    expect(await joined.donorErrors()).toEqual([]);
  });
});

describe('a tab serving corrupted pieces', () => {
  let grid: Awaited<ReturnType<typeof startGrid>>;
  let corruptPeer: string;
  beforeAll(async () => {
    grid = await startGrid();
    await openServing(grid.tabs);
    corruptPeer = (await openServing(grid.tabs, 'fault=corrupt-pieces', FAULTY_DONOR)).state.peerId;
  });
  afterAll(() => grid?.close());

  it('is caught by the tab that fetches from it, dropped, and the download completes from honest peers', async () => {
    const { tab, state } = await openServing(grid.tabs);
    const d = state.download!;
    expect(d.badPieces).toBeGreaterThanOrEqual(1);
    expect(d.dropped).toEqual([corruptPeer]);
    expect(d.verified + d.resumed).toBe(d.total);
    expect(d.fromPeers).toBeGreaterThanOrEqual(d.total / 2);
    expect(await tab.donorErrors()).toEqual([]);
  });
});
