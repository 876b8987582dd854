/**
 * Headless Chromium donor tabs for the demo, the grid bench and the e2e tests: each tab opens
 * the server's donor page in a browser context of its own, so each has its own IndexedDB (as
 * separate visitors would) and its own engine worker. Page errors are collected per tab.
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium } from './chromium.ts';

export interface DonorTab {
  page: Page;
  context: BrowserContext;
  /** console errors and uncaught exceptions of the page and its workers */
  errors: string[];
  /** the page's window.donor state (web/donor/main.ts) */
  state(): Promise<Record<string, unknown> | null>;
  /** the donor page's own error list (shown to the visitor) */
  donorErrors(): Promise<string[]>;
}

export interface DonorTabs {
  browser: Browser;
  tabs: DonorTab[];
  /** opens one more tab on `page` (default: the donor page, 'donor/'), `query` its URL query (e.g. 'ep=wasm') */
  open(query?: string, page?: string): Promise<DonorTab>;
  close(): Promise<void>;
}

/**
 * `chromiumArgs`: more command-line switches (a test behind a self-signed certificate passes
 * --ignore-certificate-errors); `executablePath`: what runs Chromium (launchChromium).
 */
export async function openDonorTabs(serverUrl: string, count: number, options: { query?: string; page?: string; chromiumArgs?: string[]; executablePath?: string } = {}): Promise<DonorTabs> {
  const browser = await launchChromium({ args: options.chromiumArgs, executablePath: options.executablePath });
  const tabs: DonorTab[] = [];
  const open = async (query = options.query ?? '', path = options.page ?? 'donor/') => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (err) => errors.push(err.message));
    page.on('console', (msg) => {
      if (msg.type() === 'error') errors.push(msg.text());
    });
    const response = await page.goto(new URL(`${path}${query ? `?${query}` : ''}`, serverUrl).href);
    if (!response?.ok()) throw new Error(`${path} answered ${response?.status() ?? 'nothing'}; is dist/web built?`);
    const tab: DonorTab = {
      page,
      context,
      errors,
      state: () => page.evaluate(() => (window as unknown as { donor?: { state(): Record<string, unknown> } }).donor?.state() ?? null),
      donorErrors: () => page.evaluate(() => (window as unknown as { donorErrors?: string[] }).donorErrors ?? []),
    };
    tabs.push(tab);
    return tab;
  };
  try {
    for (let i = 0; i < count; i++) await open();
  } catch (err) {
    await browser.close();
    throw err;
  }
  return {
    browser,
    tabs,
    open,
    async close() {
      await browser.close();
    },
  };
}
