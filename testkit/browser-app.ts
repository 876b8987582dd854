/**
 * Opens a page of the built web app (dist/web at /, and the test pages of dist/test-web at
 * /test/, built once per run by testkit/web-build.ts) in a fresh headless Chromium, served
 * crossOriginIsolated by the server's static files. The e2e tests' one way in:
 * `const app = await openApp('test/engine-test/')`, then `app.page.evaluate(...)`, then
 * `await app.close()`.
 */
import { ORT_ASSET_PATH } from '../shared/engine/api.ts';
import { fileURLToPath } from 'node:url';
import type { Browser, ConsoleMessage, Page } from 'playwright-core';
import { launchChromium } from '../signaling-server/local-grid/chromium.ts';
import { startStaticServer, type StaticServer } from '../signaling-server/http/static-files.ts';
import { TEST_PAGES_PATH, TEST_WEB_DIR } from './pages/paths.ts';

export const distWebDir = fileURLToPath(new URL('../dist/web/', import.meta.url));
export const ortDistDir = fileURLToPath(new URL('../node_modules/onnxruntime-web/dist/', import.meta.url));

export interface OpenAppOptions {
  /** A directory served under /packages/ (model packages for the page to fetch). */
  packagesDir?: string;
  /** A JS expression to wait for after load, e.g. 'window.harness?.ready === true'. */
  waitFor?: string;
}

export interface App {
  page: Page;
  /** The static server's origin with a trailing slash; routes: /, /ort/, /packages/. */
  baseUrl: string;
  /** Console errors and uncaught exceptions from the page and its workers, as they arrived. */
  errors: string[];
  close(): Promise<void>;
}

/** Opens `pagePath` (e.g. 'test/engine-test/'). */
export async function openApp(pagePath: string, options: OpenAppOptions = {}): Promise<App> {
  const routes: Record<string, string> = { '/': distWebDir, [TEST_PAGES_PATH]: TEST_WEB_DIR, [ORT_ASSET_PATH]: ortDistDir };
  if (options.packagesDir) routes['/packages/'] = options.packagesDir;
  const server = await startStaticServer({ routes });
  let browser: Browser | undefined;
  try {
    browser = await launchChromium();
    const page = await browser.newPage();
    const errors = forwardErrors(page);
    const response = await page.goto(new URL(pagePath.replace(/^\//, ''), server.url).href);
    if (!response?.ok()) throw new Error(`openApp: ${pagePath} answered ${response?.status() ?? 'nothing'}; are dist/web and dist/test-web built?`);
    if (options.waitFor) await page.waitForFunction(options.waitFor);
    return { page, baseUrl: server.url, errors, close: closer(browser, server) };
  } catch (err) {
    await closer(browser, server)();
    throw err;
  }
}

/** Prints the page's (and its workers') errors in the test output, and collects them. */
function forwardErrors(page: Page): string[] {
  const errors: string[] = [];
  const report = (message: ConsoleMessage) => {
    if (message.type() !== 'error') return;
    const { url } = message.location();
    const text = `[console.error] ${message.text()}${url ? ` (${url})` : ''}`;
    errors.push(text);
    console.error(text);
  };
  // The page's console event carries its dedicated workers' messages too (Playwright 1.65).
  page.on('console', report);
  page.on('pageerror', (err) => {
    const text = `[page error] ${err.stack ?? err.message}`;
    errors.push(text);
    console.error(text);
  });
  return errors;
}

function closer(browser: Browser | undefined, server: StaticServer): () => Promise<void> {
  return async () => {
    await browser?.close();
    await server.close();
  };
}
