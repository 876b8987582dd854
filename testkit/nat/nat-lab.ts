/**
 * A small Internet in network namespaces, for the NAT traversal test (e2e/nat.test.ts): a
 * "public" namespace with a bridge (198.51.100.1, TEST-NET-2: where the grid server and coturn
 * listen), and homes, each a host namespace (10.0.N.2) behind a router namespace with its own
 * public address (198.51.100.(10+N)) and NAT:
 * - 'symmetric': MASQUERADE --random-fully, a new port for every destination, and inbound
 *   traffic only as replies: what two tabs on mobile or corporate networks meet. Two such homes
 *   cannot reach each other directly; only a TURN server joins them.
 * - 'full-cone': one fixed mapping per host port (SNAT) and everything arriving at the public
 *   address forwarded in (DNAT): STUN's server-reflexive address works for any peer.
 * Every address lives in the namespaces made here; `destroy()` deletes them all (their veths go
 * with them), and so does the next lab with the same prefix, should a run have died before.
 * Needs root, `ip` and `iptables` (Debian's iptables package).
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess, SpawnOptions } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { InfermeshError } from '../../shared/errors.ts';

export class NatLabError extends InfermeshError {
  override name = 'NatLabError';
}

export type NatKind = 'symmetric' | 'full-cone';

export interface NatHome {
  /** the namespace the home's programs run in (a browser) */
  ns: string;
  /** its router's namespace, where the NAT is */
  router: string;
  /** the router's address on the public network: what peers see */
  publicIp: string;
  privateIp: string;
  kind: NatKind;
}

export interface NatLab {
  /** the public namespace and its address (the server's and coturn's) */
  publicNs: string;
  publicIp: string;
  homes: NatHome[];
  /** Starts `command` inside namespace `ns`. */
  spawnIn(ns: string, command: string, args: string[], options?: SpawnOptions): ChildProcess;
  /** An executable in `dir` that runs `binary` inside `ns` with the arguments it is given (for Playwright's executablePath). */
  wrapper(ns: string, binary: string, dir: string): string;
  destroy(): void;
}

const PUBLIC_NET = '198.51.100';

/** Why the lab cannot be built here (not root, no `ip` or `iptables`, namespaces refused), or undefined. */
export function natLabMissing(): string | undefined {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'network namespaces need root';
  for (const [tool, pkg] of [['ip', 'iproute2'], ['iptables', 'iptables']]) {
    if (spawnSync(tool, ['-V'], { stdio: 'ignore' }).error) return `no ${tool} (Debian's ${pkg} package)`;
  }
  const probe = `improbe${process.pid}`;
  const made = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (made.status !== 0) return `ip netns add failed: ${made.stderr.trim()}`;
  spawnSync('ip', ['netns', 'del', probe]);
  return undefined;
}

function run(args: string[]): void {
  const [cmd, ...rest] = args;
  const result = spawnSync(cmd, rest, { encoding: 'utf8' });
  if (result.status !== 0) throw new NatLabError(`${args.join(' ')} failed: ${(result.stderr || result.error?.message || '').trim()}`);
}

const inNs = (ns: string, ...args: string[]) => run(['ip', 'netns', 'exec', ns, ...args]);

/** Deletes every namespace whose name starts with `prefix`. */
function deleteNamespaces(prefix: string): void {
  const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
  for (const name of list.split('\n').map((l) => l.split(' ')[0]).filter((n) => n.startsWith(prefix))) spawnSync('ip', ['netns', 'del', name]);
}

/** Builds the public network and one home per entry of `kinds` (home N is 10.0.N.0/24 behind 198.51.100.(10+N)). */
export function createNatLab(prefix: string, kinds: NatKind[]): NatLab {
  deleteNamespaces(`${prefix}-`);
  const publicNs = `${prefix}-pub`;
  const publicIp = `${PUBLIC_NET}.1`;
  const homes: NatHome[] = [];
  const onExit = () => deleteNamespaces(`${prefix}-`);
  process.on('exit', onExit);
  try {
    run(['ip', 'netns', 'add', publicNs]);
    run(['ip', '-n', publicNs, 'link', 'set', 'lo', 'up']);
    run(['ip', '-n', publicNs, 'link', 'add', 'br0', 'type', 'bridge']);
    run(['ip', '-n', publicNs, 'link', 'set', 'br0', 'up']);
    run(['ip', '-n', publicNs, 'addr', 'add', `${publicIp}/24`, 'dev', 'br0']);
    kinds.forEach((kind, i) => {
      const n = i + 1;
      const home: NatHome = { ns: `${prefix}-h${n}`, router: `${prefix}-r${n}`, publicIp: `${PUBLIC_NET}.${10 + n}`, privateIp: `10.0.${n}.2`, kind };
      const { ns, router } = home;
      for (const name of [router, ns]) {
        run(['ip', 'netns', 'add', name]);
        run(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
      }
      // The router's uplink on the public bridge, and its LAN to the home's host.
      run(['ip', 'link', 'add', `${prefix}w${n}`, 'netns', router, 'type', 'veth', 'peer', 'name', `${prefix}p${n}`, 'netns', publicNs]);
      run(['ip', '-n', publicNs, 'link', 'set', `${prefix}p${n}`, 'master', 'br0', 'up']);
      run(['ip', '-n', router, 'link', 'set', `${prefix}w${n}`, 'name', 'wan']);
      run(['ip', '-n', router, 'addr', 'add', `${home.publicIp}/24`, 'dev', 'wan']);
      run(['ip', '-n', router, 'link', 'set', 'wan', 'up']);
      run(['ip', 'link', 'add', `${prefix}l${n}`, 'netns', router, 'type', 'veth', 'peer', 'name', `${prefix}e${n}`, 'netns', ns]);
      run(['ip', '-n', router, 'link', 'set', `${prefix}l${n}`, 'name', 'lan']);
      run(['ip', '-n', router, 'addr', 'add', `10.0.${n}.1/24`, 'dev', 'lan']);
      run(['ip', '-n', router, 'link', 'set', 'lan', 'up']);
      run(['ip', '-n', ns, 'link', 'set', `${prefix}e${n}`, 'name', 'eth0']);
      run(['ip', '-n', ns, 'addr', 'add', `${home.privateIp}/24`, 'dev', 'eth0']);
      run(['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
      run(['ip', '-n', ns, 'route', 'add', 'default', 'via', `10.0.${n}.1`]);
      inNs(router, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
      if (kind === 'symmetric') {
        inNs(router, 'iptables', '-t', 'nat', '-A', 'POSTROUTING', '-o', 'wan', '-j', 'MASQUERADE', '--random-fully');
      } else {
        inNs(router, 'iptables', '-t', 'nat', '-A', 'POSTROUTING', '-o', 'wan', '-j', 'SNAT', '--to-source', home.publicIp);
        inNs(router, 'iptables', '-t', 'nat', '-A', 'PREROUTING', '-i', 'wan', '-d', home.publicIp, '-j', 'DNAT', '--to-destination', home.privateIp);
      }
      homes.push(home);
    });
  } catch (err) {
    onExit();
    process.off('exit', onExit);
    throw err;
  }
  return {
    publicNs,
    publicIp,
    homes,
    spawnIn: (ns, command, args, options = {}) => spawn('ip', ['netns', 'exec', ns, command, ...args], options),
    wrapper(ns, binary, dir) {
      const path = join(dir, `in-${ns}`);
      writeFileSync(path, `#!/bin/sh\nexec ip netns exec ${ns} ${binary} "$@"\n`);
      chmodSync(path, 0o755);
      return path;
    },
    destroy() {
      onExit();
      process.off('exit', onExit);
    },
  };
}
