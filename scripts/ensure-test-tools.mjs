#!/usr/bin/env node
/**
 * `npm test`'s pretest step for the network tools some tests drive for real: coturn's
 * `turnserver` (e2e/ice-servers.test.ts, e2e/nat.test.ts) and `iptables`, which makes the NATs
 * of e2e/nat.test.ts. Whatever is missing is installed with apt-get when we are root (Debian's
 * packages); otherwise one line says how, and the tests that need it are skipped, saying so.
 * Plain Node ESM with no imports outside node:, as ensure-chromium.mjs.
 */
import { spawnSync } from 'node:child_process';

const TOOLS = [
  { binary: 'turnserver', args: ['--help'], pkg: 'coturn', tests: 'the real-TURN and NAT tests' },
  { binary: 'iptables', args: ['-V'], pkg: 'iptables', tests: 'the NAT test' },
];

const present = (tool) => !spawnSync(tool.binary, tool.args, { stdio: 'ignore' }).error;
const missing = TOOLS.filter((t) => !present(t));

if (missing.length > 0) {
  const pkgs = missing.map((t) => t.pkg);
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot) {
    for (const t of missing) console.error(`ensure-test-tools: ${t.binary} is missing; ${t.tests} will be skipped. Install it with: sudo apt-get install -y ${t.pkg}`);
  } else {
    console.error(`ensure-test-tools: installing Debian's ${pkgs.join(', ')} (${missing.map((t) => t.binary).join(', ')} missing)`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    let result = spawnSync('apt-get', ['install', '-y', ...pkgs], { stdio: 'inherit', env });
    if (result.status !== 0) {
      spawnSync('apt-get', ['update'], { stdio: 'inherit', env });
      result = spawnSync('apt-get', ['install', '-y', ...pkgs], { stdio: 'inherit', env });
    }
    for (const t of missing) console.error(present(t) ? `ensure-test-tools: installed ${t.binary}` : `ensure-test-tools: could not install ${t.pkg}; ${t.tests} will be skipped`);
  }
}
