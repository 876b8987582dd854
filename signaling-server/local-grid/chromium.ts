/**
 * Launches Debian's headless Chromium for the e2e tests, with WebGPU on (SwiftShader when the
 * machine has no GPU). Playwright's own browser download does not work here; `npm test`'s
 * pretest (scripts/ensure-chromium.mjs) makes sure this binary exists. Flags are the set
 * verified in ../shared/guide/ENVIRONMENT.md.
 */
import { accessSync, constants } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { InfermeshError } from '../../shared/errors.ts';

/** No Chromium binary where the local grid looks for one. */
export class ChromiumMissingError extends InfermeshError {
  override name = 'ChromiumMissingError';
}

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
  /** a program that runs Chromium (the NAT test's runs it inside a network namespace); default chromiumPath */
  executablePath?: string;
}

/**
 * A fresh browser. Playwright's launch() gives each browser a new temporary user-data-dir and
 * deletes it on close, so no cache, storage or IndexedDB leaks between tests.
 */
export async function launchChromium(options: LaunchChromiumOptions = {}): Promise<Browser> {
  try {
    accessSync(chromiumPath, constants.X_OK);
  } catch {
    throw new ChromiumMissingError(`no Chromium at ${chromiumPath}: run \`node scripts/ensure-chromium.mjs\` (as root it installs Debian's chromium package), or set CHROMIUM_PATH to a Chromium binary`);
  }
  return chromium.launch({
    executablePath: options.executablePath ?? chromiumPath,
    headless: true,
    args: [...CHROMIUM_ARGS, ...(options.args ?? [])],
  });
}
