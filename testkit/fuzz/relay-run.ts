/**
 * Runs one relay fuzz case: the bytes go to the relay's WebSocket port over a raw socket (after
 * a good handshake, for bad frames), and the case waits until the relay closes the connection
 * or a short while passes. Its outcome is what the relay did; what it must not do is exit, which
 * the rig checks around every case (fuzz-rig.ts). Used by fuzz-rig.ts.
 */
import { connect } from 'node:net';
import type { CaseOutcome } from './findings.ts';
import { handshake } from './relay-cases.ts';
import type { RelayCase } from './relay-cases.ts';

/** Long enough for the relay to read the bytes and act on them; the rig then looks for a crash. */
const WATCH_MS = 1_500;

/** The TCP port of a multiaddr like /ip4/127.0.0.1/tcp/39189/ws/p2p/<id>. */
export function relayPort(relayAddr: string): number {
  const port = /\/tcp\/(\d+)\//.exec(relayAddr)?.[1];
  if (!port) throw new Error(`no TCP port in the relay address ${relayAddr}`);
  return Number(port);
}

export function runRelayCase(c: RelayCase, relayAddr: string): Promise<CaseOutcome> {
  return new Promise((done) => {
    const socket = connect(relayPort(relayAddr), '127.0.0.1');
    let received = '';
    let settled = false;
    const finish = (how: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const status = /^HTTP\/1\.1 (\d{3})/.exec(received)?.[1];
      done({ outcome: `relay ${status ?? 'no status'}, ${how}`, findings: [] });
    };
    const timer = setTimeout(() => finish('still open'), WATCH_MS);
    socket.on('connect', () => {
      if (c.kind === 'bad-frames' || c.kind === 'bad-handshake') socket.write(handshake(c.handshake));
      if (c.bytes.byteLength > 0) socket.write(c.bytes);
    });
    socket.on('data', (chunk) => (received += chunk.toString('latin1')));
    socket.on('error', () => finish('reset'));
    socket.on('close', () => finish('closed'));
  });
}
