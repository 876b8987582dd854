/**
 * Launches Debian's headless Chromium for the e2e tests, with WebGPU on (SwiftShader when the
 * machine has no GPU). Playwright's own browser download does not work here; `npm test`'s
 * pretest (scripts/ensure-chromium.mjs) makes sure this binary exists. Flags are the set
 * verified in ../shared/guide/ENVIRONMENT.md.
 */
import { chromium, type Browser } from 'playwright-core';

/** The Chromium binary: CHROMIUM_PATH, else Debian's package. */
export const chromiumPath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

export const CHROMIUM_ARGS: readonly string[] = [
  '--headless=new',
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  // navigator.gpu.requestAdapter() returns null without it in headless Chromium.
  '--enable-unsafe-webgpu',
];

export interface LaunchChromiumOptions {
  /** Flags added after CHROMIUM_ARGS. */
  args?: readonly string[];
}

/**
 * A fresh browser. Playwright's launch() gives each browser a new temporary user-data-dir and
 * deletes it on close, so no cache, storage or IndexedDB leaks between tests.
 */
export async function launchChromium(options: LaunchChromiumOptions = {}): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: [...CHROMIUM_ARGS, ...(options.args ?? [])],
  });
}
