/**
 * The relay's WebSocket transport: @libp2p/websockets, with one thing added. Its listener
 * hands each upgraded socket to libp2p without an 'error' listener on the `ws` WebSocket, so
 * one malformed frame from anyone (`Invalid WebSocket frame: RSV1 must be clear`) is an
 * unhandled 'error' event that ends the process (ws issues #1777, #2055: "add a listener for
 * the 'error' event"; @libp2p/websockets 10.1.21, the latest, still lacks one). Here every
 * inbound WebSocket gets one before libp2p sees it: ws then closes that connection alone, and
 * libp2p sees it close.
 *
 * And one thing mended: libp2p resets a connection (an abort: a failed ping, a muxer error) with
 * `close(1006)`, a code `ws` refuses to send (1006 means "closed without a close frame"), so it
 * threw, the socket stayed open and the far end never heard: a tab kept a connection whose
 * muxer was gone, and its next dial to the relay reused it and failed. Here 1006 drops the
 * socket, which is what the code describes.
 *
 * And each socket is kept alive with WebSocket ping frames (websocket-heartbeat.ts) when
 * `heartbeat` is given. Used by relay.ts.
 */
import { webSockets } from '@libp2p/websockets';
import type { WebSocketsInit } from '@libp2p/websockets';
import type { CreateListenerOptions, Listener, Transport } from '@libp2p/interface';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { InfermeshError } from '../shared/errors.ts';
import { keepAlive } from './websocket-heartbeat.ts';
import type { HeartbeatOptions, HeartbeatSocket } from './websocket-heartbeat.ts';

/** The listener no longer has the WebSocket server this wrapper guards: @libp2p/websockets changed. */
export class RelayTransportError extends InfermeshError {
  override name = 'RelayTransportError';
}

interface WebSocketLike extends HeartbeatSocket {
  on(event: 'error', listener: (err: Error) => void): void;
  on(event: 'pong' | 'close', listener: () => void): void;
  close(code?: number, reason?: string | Buffer): void;
}

type UpgradeCallback = (ws: WebSocketLike, req: IncomingMessage) => void;

/** "Abnormal closure": reported when a socket drops without a close frame, never sent in one. */
const ABNORMAL_CLOSURE = 1006;

interface WebSocketServerLike {
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, callback: UpgradeCallback): void;
}

export interface GuardOptions {
  onSocketError?: (err: Error) => void;
  heartbeat?: HeartbeatOptions;
  /** receives the listener's upgrade handler, so another HTTP server can hand it WebSocket upgrades (relay.ts) */
  onUpgradeHandler?: (upgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void) => void;
}

export function guardedWebSockets(init: WebSocketsInit = {}, { onSocketError = () => undefined, heartbeat, onUpgradeHandler }: GuardOptions = {}) {
  const factory = webSockets(init);
  return (components: Parameters<typeof factory>[0]): Transport => {
    const transport = factory(components);
    const createListener = transport.createListener.bind(transport);
    transport.createListener = (options: CreateListenerOptions): Listener => {
      const listener = createListener(options);
      // A private field of WebSocketListener; the relay's test sends a bad frame, so a rename fails it.
      const server = (listener as unknown as { wsServer?: WebSocketServerLike }).wsServer;
      if (!server || typeof server.handleUpgrade !== 'function') throw new RelayTransportError('@libp2p/websockets no longer exposes its WebSocket server; the relay cannot guard its sockets');
      const handleUpgrade = server.handleUpgrade.bind(server);
      server.handleUpgrade = (req, socket, head, callback) =>
        handleUpgrade(req, socket, head, (ws, request) => {
          ws.on('error', onSocketError);
          const close = ws.close.bind(ws);
          ws.close = (code, reason) => (code === ABNORMAL_CLOSURE ? ws.terminate() : close(code, reason));
          if (heartbeat) keepAlive(ws, heartbeat);
          callback(ws, request);
        });
      if (onUpgradeHandler) {
        // Also a private method: it hands an upgrade to the guarded server above, then to libp2p.
        const onUpgrade = (listener as unknown as { onUpgrade?: (req: IncomingMessage, socket: Duplex, head: Buffer) => void }).onUpgrade;
        if (typeof onUpgrade !== 'function') throw new RelayTransportError('@libp2p/websockets no longer exposes its upgrade handler; the relay cannot share the HTTP server\'s port');
        onUpgradeHandler(onUpgrade.bind(listener));
      }
      return listener;
    };
    return transport;
  };
}
