#!/usr/bin/env node
/**
 * `npm test`'s pretest step for TURN: e2e/ice-servers.test.ts relays WebRTC through a real
 * coturn (`turnserver`, Debian's coturn package). If it is missing, install it with apt-get when
 * we are root; otherwise say how in one line and go on: that one case is then skipped, and says
 * so. Plain Node ESM with no imports outside node:, as ensure-chromium.mjs.
 */
import { spawnSync } from 'node:child_process';

const present = () => !spawnSync('turnserver', ['--help'], { stdio: 'ignore' }).error;

if (!present()) {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot) {
    console.error('ensure-coturn: turnserver is missing; the real-TURN test will be skipped. Install it with: sudo apt-get install -y coturn');
  } else {
    console.error("ensure-coturn: turnserver is missing; installing Debian's coturn package");
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    let result = spawnSync('apt-get', ['install', '-y', 'coturn'], { stdio: 'inherit', env });
    if (result.status !== 0) {
      spawnSync('apt-get', ['update'], { stdio: 'inherit', env });
      result = spawnSync('apt-get', ['install', '-y', 'coturn'], { stdio: 'inherit', env });
    }
    console.error(present() ? 'ensure-coturn: installed turnserver' : 'ensure-coturn: could not install coturn; the real-TURN test will be skipped');
  }
}
