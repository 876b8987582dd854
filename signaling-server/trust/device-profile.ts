/**
 * A donor's device as the server can tell it apart, beside the signature the tab reports. The
 * signature (worker/device/handshake.ts) is a hash the tab computes and sends: a cheater who is
 * banned sends another. The profile is made here, from what the server sees and from what the
 * tab had to measure to be placed at all:
 *
 *   network   the address its connection comes from: the /24 of an IPv4 address, the /48 of an
 *             IPv6 one ('loopback' on this machine; a TLS proxy on the same host makes every tab
 *             'loopback', so a grid behind one tells devices apart by the rest alone)
 *   provider  the execution provider it serves on (webgpu, wasm, cpu)
 *   adapter   the adapter or CPU description it showed people (its label)
 *   speed     its handshake's ms per layer, in half-octave steps (a factor of √2): a tab that
 *             lies about its speed is placed by the lie, and routes time a slow liar out
 *
 * A ban records the banned device's profile. A newcomer whose profile is that one, or one speed
 * step either side, resembles a banned device: it is not refused (an office of identical
 * machines behind one address would be), but none of its work is trusted until re-measured —
 * the validator checks every step it serves until it has earned trust back (challenge.ts
 * samplingRate), and it gets no sponsored bond.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import type { DeviceSummary } from '../../shared/grid/protocol.ts';

export interface DeviceProfile {
  /** the key a ban records (`profile:<own>`) */
  own: string;
  /** the keys that make a newcomer resemble a banned device: its own and one speed step either side */
  near: string[];
}

/** The network part of a multiaddr's address: a /24, a /48, 'loopback', or 'unknown'. */
export function networkOf(remoteAddr: string | undefined): string {
  const v4 = /^\/ip4\/(\d+)\.(\d+)\.(\d+)\.(\d+)\//.exec(remoteAddr ?? '');
  if (v4) return v4[1] === '127' ? 'loopback' : `${v4[1]}.${v4[2]}.${v4[3]}.0/24`;
  const v6 = /^\/ip6\/([0-9a-fA-F:.]+)\//.exec(remoteAddr ?? '');
  if (v6) {
    if (v6[1] === '::1') return 'loopback';
    const groups = expandIpv6(v6[1]);
    return groups ? `${groups.slice(0, 3).join(':')}::/48` : 'unknown';
  }
  return 'unknown';
}

/** An IPv6 address's eight groups (lower case, no leading zeros), or undefined when it is not one. */
function expandIpv6(text: string): string[] | undefined {
  const [head, tail, ...more] = text.toLowerCase().split('::');
  if (more.length > 0) return undefined;
  const left = head ? head.split(':') : [];
  const right = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const missing = 8 - left.length - right.length;
  if (tail === undefined ? missing !== 0 : missing < 1) return undefined;
  const groups = [...left, ...Array<string>(tail === undefined ? 0 : missing).fill('0'), ...right];
  return groups.every((g) => /^[0-9a-f]{1,4}$/.test(g)) ? groups.map((g) => g.replace(/^0+(?=.)/, '')) : undefined;
}

const speedStep = (msPerLayer: number) => Math.round(Math.log2(Math.max(msPerLayer, 1e-3)) * 2);

const key = (parts: { network: string; provider: string; adapter: string; speed: number }) =>
  bytesToHex(sha256(new TextEncoder().encode(JSON.stringify([parts.network, parts.provider, parts.adapter, parts.speed]))));

export function deviceProfile(device: DeviceSummary, remoteAddr: string | undefined): DeviceProfile {
  const base = { network: networkOf(remoteAddr), provider: device.executionProvider, adapter: device.label.trim().toLowerCase() };
  const speed = speedStep(device.msPerLayer);
  return { own: key({ ...base, speed }), near: [speed - 1, speed, speed + 1].map((s) => key({ ...base, speed: s })) };
}
