#!/usr/bin/env node
/**
 * `npm test`'s pretest step: the e2e tests drive Debian's Chromium (Playwright's own browser
 * download does not work here, see ../shared/guide/ENVIRONMENT.md). If it is missing, install it
 * with apt-get when we are root, or stop with one line saying how. Plain Node ESM with no
 * imports outside node: so it runs before anything else is known to work.
 *
 * CHROMIUM_PATH names another Chromium binary; e2e/support/browser.ts reads the same variable.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';

const DEFAULT_PATH = '/usr/bin/chromium';
const chromiumPath = process.env.CHROMIUM_PATH || DEFAULT_PATH;

function isExecutable(path) {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function fail(message) {
  console.error(`ensure-chromium: ${message}`);
  process.exit(1);
}

function run(command, args) {
  console.error(`ensure-chromium: ${command} ${args.join(' ')}`);
  const result = spawnSync(command, args, {
    stdio: 'inherit',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  if (result.error) fail(`${command} could not start: ${result.error.message}`);
  if (result.status !== 0) fail(`${command} ${args.join(' ')} exited with ${result.status ?? result.signal}`);
}

if (isExecutable(chromiumPath)) process.exit(0);

if (process.env.CHROMIUM_PATH) {
  fail(`CHROMIUM_PATH=${chromiumPath} is not an executable file. Point it at a Chromium binary, or unset it to use ${DEFAULT_PATH} (sudo apt-get install -y chromium).`);
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
if (!isRoot) {
  fail(`Chromium is missing (${DEFAULT_PATH}); the e2e tests need it. Install it with: sudo apt-get update && sudo apt-get install -y chromium   (or set CHROMIUM_PATH to a Chromium binary)`);
}

console.error(`ensure-chromium: ${DEFAULT_PATH} is missing; installing Debian's chromium package`);
run('apt-get', ['update']);
run('apt-get', ['install', '-y', 'chromium']);
if (!isExecutable(DEFAULT_PATH)) fail(`apt-get installed chromium but ${DEFAULT_PATH} is still missing`);
console.error(`ensure-chromium: installed ${DEFAULT_PATH}`);
