/**
 * The server's libp2p node: a circuit-relay-v2 relay over WebSockets that introduces peers
 * (WebRTC SDP travels through it) and carries the coordinator protocol. Tensors never cross it:
 * relayed connections are limited, and grid peers refuse to send tensors on them.
 */
import { createLibp2p } from 'libp2p';
import type { Libp2p } from 'libp2p';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { identify } from '@libp2p/identify';
import { circuitRelayServer } from '@libp2p/circuit-relay-v2';
import type { PrivateKey } from '@libp2p/interface';
import { multiaddr } from '@multiformats/multiaddr';
import type { Multiaddr } from '@multiformats/multiaddr';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { guardedWebSockets } from './relay-websockets.ts';
import type { HeartbeatOptions } from './websocket-heartbeat.ts';
import type { ConnectionMonitorInit } from 'libp2p';

export interface RelayOptions {
  host: string;
  /** 0 picks a free port */
  port: number;
  /** a persisted key keeps the relay's peer id across restarts */
  privateKey?: PrivateKey;
  /** WebSocket ping frames (default RELAY_HEARTBEAT) */
  heartbeat?: HeartbeatOptions;
}

export interface RelayNode extends Libp2p {
  /**
   * Takes a WebSocket upgrade from another HTTP server (the grid's, so that pages, API and relay
   * share one port and one origin); the relay's own listener then only serves loopback.
   */
  acceptUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /**
   * The addresses peers reach the relay at (e.g. '/dns4/grid.example.org/tcp/443/wss'): what
   * getMultiaddrs() returns, with the relay's peer id, and what its reservations hand peers for
   * their relayed addresses. Before this, the listen addresses.
   */
  announce(addrs: string[]): void;
}

/**
 * How the relay watches its peers' WebSocket connections. libp2p's connection monitor
 * pings each connection every 10 s and, by default, aborts one whose ping takes longer than an
 * adaptive timeout that can be as short as 5 s. A donor tab's main thread stalls longer than
 * that on a loaded machine (tabs compiling WASM, loading weights, computing), and the relay then
 * cut the tab's WebSocket: its coordinator session was reset and the grid lost a donor that was
 * alive (churn suite and `demo --churn`, 2 of 5 runs). So the relay watches in two ways:
 *  - WebSocket ping frames every 15 s, answered by the browser's network stack without the page
 *    (websocket-heartbeat.ts): a socket unanswered for 30 s is dropped (a laptop asleep, a
 *    network gone). They cost an idle tab nothing.
 *  - libp2p's ping, once a minute, unanswered for 30 s: the backstop for a tab whose JavaScript
 *    hangs (a frozen tab still answers ping frames), so the coordinator stops routing new
 *    requests to it within 90 s; a live tab cut anyway joins again
 *    (shared/grid/coordinator-session.ts). At 15 s these pings, each a stream negotiated and
 *    encrypted on both sides, were the one recurring spike of an idle 4-tab grid's CPU.
 *
 * Between peers the monitor pings once a minute too (shared/grid/node.ts): a WebRTC link that
 * stalls for seconds has already failed its route's step deadline.
 */
const RELAY_CONNECTION_MONITOR: ConnectionMonitorInit = {
  pingInterval: 60_000,
  pingTimeout: { minTimeout: 30_000, maxTimeout: 30_000 },
};
const RELAY_HEARTBEAT: HeartbeatOptions = { intervalMs: 15_000, deadMs: 30_000 };

export async function startRelay(options: RelayOptions): Promise<RelayNode> {
  let upgrade: ((req: IncomingMessage, socket: Duplex, head: Buffer) => void) | undefined;
  let announced: Multiaddr[] | undefined;
  const node = await createLibp2p({
    privateKey: options.privateKey,
    addresses: {
      listen: [`/ip4/${options.host}/tcp/${options.port}/ws`],
      // Read on every use (identify, reservations, getMultiaddrs), so announce() takes effect at once.
      announceFilter: (addrs) => announced ?? addrs,
    },
    // A malformed frame closes its own connection, never the process (relay-websockets.ts).
    transports: [guardedWebSockets({}, { heartbeat: options.heartbeat ?? RELAY_HEARTBEAT, onUpgradeHandler: (handler) => (upgrade = handler) })],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      identify: identify(),
      // Reservations for every tab of a grid: the defaults (15) are too few for a busy page.
      relay: circuitRelayServer({ reservations: { maxReservations: 1024 } }),
    },
    connectionGater: { denyDialMultiaddr: () => false },
    // A tab busy for seconds is not a tab gone (RELAY_CONNECTION_MONITOR, RELAY_HEARTBEAT).
    connectionMonitor: RELAY_CONNECTION_MONITOR,
  });
  return Object.assign(node, {
    acceptUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer) {
      if (!upgrade || node.status !== 'started') return void socket.destroy();
      upgrade(req, socket, head);
    },
    announce(addrs: string[]) {
      announced = addrs.map((a) => multiaddr(a).encapsulate(`/p2p/${node.peerId}`));
    },
  });
}
