/**
 * The churn faults, each done to a real donor tab the way it happens on the Internet:
 *  - `close-tab`: the visitor closes the tab (the page unloads; its WebRTC connections close);
 *  - `kill-browser`: the browser process dies at once (CDP Browser.crash: no unload, no goodbye,
 *    its peers' connections go silent);
 *  - `drop-link`: the tab's direct WebRTC links are cut (the tab stays on the grid);
 *  - `throttle`: every frame the tab hands on leaves THROTTLE_MS late, as over a sagging link;
 *  - `freeze`: the page's JavaScript stops (CDP Debugger.pause, as a hung or frozen tab): its
 *    connections stay open and it answers nothing. (Page.setWebLifecycleState 'frozen' stops its
 *    timers but, in headless Chromium, not its network events: a frozen page went on serving.)
 * The tab must be the churn donor page (CHURN_DONOR) for the two faults that need its help.
 */
import type { CDPSession } from 'playwright-core';
import type { ChurnGrid, ChurnTab } from './churn-grid.ts';

/** The debugger sessions holding frozen tabs, to resume them with. */
const frozen = new WeakMap<ChurnTab, CDPSession>();

export const CHURN_FAULTS = ['close-tab', 'kill-browser', 'drop-link', 'throttle', 'freeze'] as const;
export type ChurnFault = (typeof CHURN_FAULTS)[number];

/**
 * How late a throttled tab hands on each frame: many times a stage's step on the test model, yet
 * under a step's deadline (400 ms at least), so the client must see the slowdown in the stage's
 * hop times and swap it, not wait for a step to go unanswered.
 */
export const THROTTLE_MS = 150;

/** Which stage of a route a fault hits. */
export const STAGE_POSITIONS = ['first', 'middle', 'last'] as const;
export type StagePosition = (typeof STAGE_POSITIONS)[number];

/** Does `fault` to the tab serving the stage at `position` of the route the grid's client generates on now; its peer id. */
export async function hitStage(grid: ChurnGrid, position: StagePosition, fault: ChurnFault): Promise<string> {
  const hops = (await grid.client.route()).hops;
  const hop = position === 'first' ? hops[0] : position === 'last' ? hops.at(-1)! : hops[Math.floor(hops.length / 2)];
  await injectFault(grid.tabOf(hop.peerId), fault);
  return hop.peerId;
}

/** Does `fault` to the tab, at once (the tab should be serving a step of a route). */
export async function injectFault(tab: ChurnTab, fault: ChurnFault): Promise<void> {
  switch (fault) {
    case 'close-tab':
      await tab.page.close();
      return;
    case 'kill-browser': {
      const session = await tab.browser.newBrowserCDPSession();
      // The browser dies before it can answer.
      await session.send('Browser.crash' as never).catch(() => undefined);
      return;
    }
    case 'drop-link':
      await tab.page.evaluate(() => window.linkFaults.dropLinks());
      return;
    case 'throttle':
      await tab.page.evaluate((ms) => window.linkFaults.throttle(ms), THROTTLE_MS);
      return;
    case 'freeze': {
      const session = await tab.page.context().newCDPSession(tab.page);
      await session.send('Debugger.enable' as never);
      await session.send('Debugger.pause' as never);
      frozen.set(tab, session);
      return;
    }
  }
}

/**
 * Brings the grid back to strength after faults hit tabs: each closed or killed tab is replaced
 * by a fresh one (another visitor), a frozen tab is woken and a throttled one sped up (its
 * visitor came back to it), a dropped link heals by itself. Every tab the faults took is gone
 * before its replacements open, so the grid waits for no tab that will never come back. Then
 * waits until every layer has its standbys again; with `background`, the replacement tabs join
 * while the grid goes on (as on the Internet), and only the serving tabs' standbys are waited for.
 */
export async function recoverTabs(grid: ChurnGrid, hits: { peerId: string; fault: ChurnFault }[], options: { background?: boolean } = {}): Promise<void> {
  let replacements = 0;
  for (const { peerId, fault } of hits) {
    const tab = grid.tabs.find((t) => t.peerId === peerId);
    if (!tab) continue;
    if (fault === 'close-tab' || fault === 'kill-browser') {
      await grid.removeTab(tab);
      replacements += 1;
    } else if (fault === 'freeze') {
      const session = frozen.get(tab);
      frozen.delete(tab);
      await session?.send('Debugger.resume' as never);
      await session?.detach();
    } else if (fault === 'throttle') {
      await tab.page.evaluate(() => window.linkFaults.throttle(0));
    }
  }
  const added = Array.from({ length: replacements }, () => grid.addTab());
  if (options.background) {
    for (const tab of added) tab.catch(() => undefined);
    return grid.ready();
  }
  await Promise.all(added);
  await grid.settle();
}
