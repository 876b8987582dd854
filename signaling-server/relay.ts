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
import { guardedWebSockets } from './relay-websockets.ts';
import { RELAY_CONNECTION_MONITOR } from '../shared/grid/connection-monitor.ts';

export interface RelayOptions {
  host: string;
  /** 0 picks a free port */
  port: number;
  /** a persisted key keeps the relay's peer id across restarts */
  privateKey?: PrivateKey;
}

export type RelayNode = Libp2p;

export async function startRelay(options: RelayOptions): Promise<RelayNode> {
  return createLibp2p({
    privateKey: options.privateKey,
    addresses: { listen: [`/ip4/${options.host}/tcp/${options.port}/ws`] },
    // A malformed frame closes its own connection, never the process (relay-websockets.ts).
    transports: [guardedWebSockets()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      identify: identify(),
      // Reservations for every tab of a grid: the defaults (15) are too few for a busy page.
      relay: circuitRelayServer({ reservations: { maxReservations: 1024 } }),
    },
    connectionGater: { denyDialMultiaddr: () => false },
    // A tab busy for seconds is not a tab gone (connection-monitor.ts).
    connectionMonitor: RELAY_CONNECTION_MONITOR,
  });
}
