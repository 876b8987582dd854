/**
 * The relay's WebSocket port faces anyone: a malformed WebSocket frame, or bytes that are not a
 * WebSocket at all, close that connection and nothing else; the relay goes on taking peers.
 * A connection the relay aborts is closed at the far end too. A socket that stops answering
 * WebSocket pings is dropped.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLibp2p } from 'libp2p';
import { webSockets } from '@libp2p/websockets';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { multiaddr } from '@multiformats/multiaddr';
import { WebSocket } from 'ws';
import { startRelay, type RelayNode } from './relay.ts';

let relay: RelayNode;
let port: number;

beforeAll(async () => {
  relay = await startRelay({ host: '127.0.0.1', port: 0 });
  port = Number(relay.getMultiaddrs()[0].toString().match(/\/tcp\/(\d+)\//)![1]);
});
afterAll(() => relay?.stop());

const UPGRADE = 'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';

/** Sends bytes to the relay's port; resolves with what came back once the relay closes the connection. */
function exchange(bytes: Buffer): Promise<string> {
  return new Promise((done, fail) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(bytes));
    let received = '';
    socket.on('data', (chunk) => (received += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => done(received));
    setTimeout(() => fail(new Error(`the relay kept the connection open; it sent ${JSON.stringify(received.slice(0, 80))}`)), 5_000).unref();
  });
}

describe('the relay under malformed WebSocket traffic', () => {
  it('a bad frame closes its own connection, and the relay goes on taking peers', async () => {
    const frames = {
      'RSV1 set': [0xc2, 0x85, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      'a client frame without a mask': [0x82, 0x05, 1, 2, 3, 4, 5],
      'a close frame with an invalid status code': [0x88, 0x82, 0, 0, 0, 0, 0x57, 0x65],
    };
    for (const [what, frame] of Object.entries(frames)) {
      const answer = await exchange(Buffer.concat([Buffer.from(UPGRADE, 'latin1'), Buffer.from(frame)]));
      expect({ what, answer: answer.slice(0, 34) }).toEqual({ what, answer: 'HTTP/1.1 101 Switching Protocols\r\n' });
    }
    // libp2p takes at most 5 connections a second from one address.
    await new Promise((r) => setTimeout(r, 1_100));
    const peer = await createLibp2p({ transports: [webSockets()], connectionEncrypters: [noise()], streamMuxers: [yamux()], connectionGater: { denyDialMultiaddr: () => false } });
    try {
      const connection = await peer.dial(multiaddr(relay.getMultiaddrs()[0]));
      expect(connection.remotePeer.equals(relay.peerId)).toBe(true);
    } finally {
      await peer.stop();
    }
  });
});

describe('a connection the relay aborts', () => {
  it('is closed at the peer too, so its next dial makes a new one', async () => {
    await new Promise((r) => setTimeout(r, 1_100));
    const peer = await createLibp2p({ transports: [webSockets()], connectionEncrypters: [noise()], streamMuxers: [yamux()], connectionGater: { denyDialMultiaddr: () => false } });
    try {
      const first = await peer.dial(multiaddr(relay.getMultiaddrs()[0]));
      await expect.poll(() => relay.getConnections(peer.peerId).length).toBe(1);
      // What a failed ping does (libp2p's connection monitor): the muxer goes, and the socket must too.
      relay.getConnections(peer.peerId).forEach((c) => c.abort(new Error('aborted by the test')));
      await expect.poll(() => peer.getConnections(relay.peerId).length, { timeout: 5_000 }).toBe(0);
      const second = await peer.dial(multiaddr(relay.getMultiaddrs()[0]));
      expect(second.id).not.toBe(first.id);
      expect(second.status).toBe('open');
    } finally {
      await peer.stop();
    }
  });
});

describe('the relay’s WebSocket heartbeat', () => {
  it('pings each socket, and drops one that stops answering', async () => {
    const watched = await startRelay({ host: '127.0.0.1', port: 0, heartbeat: { intervalMs: 100, deadMs: 300 } });
    try {
      const url = `ws://127.0.0.1:${watched.getMultiaddrs()[0].toString().match(/\/tcp\/(\d+)\//)![1]}/`;
      const open = (autoPong: boolean) =>
        new Promise<{ socket: WebSocket; pings: number; closedAt?: number }>((resolve, reject) => {
          const socket = new WebSocket(url, { autoPong });
          const state = { socket, pings: 0, closedAt: undefined as number | undefined };
          socket.on('ping', () => state.pings++);
          socket.on('close', () => (state.closedAt = performance.now()));
          socket.on('error', () => undefined);
          socket.on('open', () => resolve(state));
          socket.on('unexpected-response', () => reject(new Error('no upgrade')));
        });
      const [answering, silent] = await Promise.all([open(true), open(false)]);
      // unanswered for 300 ms: dropped at the next ping after that (on a loaded machine, later)
      await expect.poll(() => silent.closedAt, { timeout: 5_000, interval: 50 }).toBeDefined();
      // answering every ping: still open after many
      await expect.poll(() => answering.pings, { timeout: 5_000, interval: 50 }).toBeGreaterThanOrEqual(8);
      expect(answering.closedAt).toBeUndefined();
      expect(answering.socket.readyState).toBe(WebSocket.OPEN);
      answering.socket.terminate();
    } finally {
      await watched.stop();
    }
  });
});
