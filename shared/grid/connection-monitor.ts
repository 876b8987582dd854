/**
 * How the server's relay watches its peers' WebSocket connections. libp2p's connection monitor
 * pings each connection every 10 s and, by default, aborts one whose ping takes longer than an
 * adaptive timeout that can be as short as 5 s. A donor tab's main thread stalls longer than
 * that on a loaded machine (tabs compiling WASM, loading weights, computing), and the relay then
 * cut the tab's WebSocket: its coordinator session was reset and the grid lost a donor that was
 * alive (churn suite and `demo --churn`, 2 of 5 runs). So on the relay the monitor is only the
 * backstop for a tab that died without a word (a laptop asleep, a frozen tab): unanswered for
 * CONNECTION_PING_TIMEOUT_MS. Long enough for a busy tab, short enough that the coordinator
 * stops routing new requests to a frozen one within the minute; a live tab cut anyway joins
 * again (coordinator-session.ts).
 *
 * Peers keep libp2p's default between themselves: a WebRTC link that stalls for seconds has
 * already failed its route's step deadline, and the ping clears links whose far end went silent.
 */
import type { ConnectionMonitorInit } from 'libp2p';

export const CONNECTION_PING_INTERVAL_MS = 15_000;
export const CONNECTION_PING_TIMEOUT_MS = 30_000;

export const RELAY_CONNECTION_MONITOR: ConnectionMonitorInit = {
  pingInterval: CONNECTION_PING_INTERVAL_MS,
  pingTimeout: { minTimeout: CONNECTION_PING_TIMEOUT_MS, maxTimeout: CONNECTION_PING_TIMEOUT_MS },
};
