/**
 * How the grid's libp2p nodes (the server's relay, every peer) watch their connections.
 * libp2p's connection monitor pings each connection every 10 s and, by default, aborts one whose
 * ping takes longer than an adaptive timeout that can be as short as 5 s. A donor tab's main
 * thread stalls longer than that on a loaded machine (tabs compiling WASM, loading weights,
 * computing), and the relay then cut the tab's WebSocket: its coordinator session was reset and
 * the grid lost a donor that was alive (churn suite and `demo --churn`, 2 of 5 runs).
 * The grid notices a gone peer by faster, surer signals (a closed data channel or peer
 * connection, step deadlines from measured hop times, route echoes), so the monitor stays only
 * as the backstop for a connection that died without a word (a laptop asleep, a frozen tab):
 * unanswered for CONNECTION_PING_TIMEOUT_MS. Long enough for a busy tab, short enough that the
 * coordinator stops routing new requests to a frozen one within the minute; a live tab cut
 * anyway joins again (coordinator-session.ts).
 */
import type { ConnectionMonitorInit } from 'libp2p';

export const CONNECTION_PING_INTERVAL_MS = 15_000;
export const CONNECTION_PING_TIMEOUT_MS = 30_000;

export const CONNECTION_MONITOR: ConnectionMonitorInit = {
  pingInterval: CONNECTION_PING_INTERVAL_MS,
  pingTimeout: { minTimeout: CONNECTION_PING_TIMEOUT_MS, maxTimeout: CONNECTION_PING_TIMEOUT_MS },
};
