/**
 * Every libp2p protocol infermesh speaks, by id: the one list to read before touching the wire.
 * A new protocol, or a new version of one, is added here. All messages are length-prefixed
 * (lpStream); control messages are JSON, tensors and pieces binary (never JSON).
 */

/** tab or SDK client <-> server, one long-lived stream over the WebSocket connection: JSON ToCoordinator / FromCoordinator (protocol.ts) */
export const COORDINATOR_PROTOCOL = '/infermesh/coordinator/1.0.0';
/** upstream (client or stage) -> stage, one stream per request per hop, direct WebRTC only: stage messages (stage-wire.ts) carrying frames (shared/protocol/frame.ts) */
export const STAGE_PROTOCOL = '/infermesh/stage/1.0.0';
/** last stage -> client, the same stage messages; a client handles this one and a stage the other, so one tab can be both */
export const RESULT_PROTOCOL = '/infermesh/result/1.0.0';
/** peer <-> peer over direct WebRTC (relays cap data at 128 KiB): a JSON piece request, a status byte and the piece (shared/swarm/piece-protocol.ts) */
export const PIECES_PROTOCOL = '/infermesh/pieces/1.0.0';
/** peer <-> peer, an echo for RTT and throughput (probe.ts) */
export const PROBE_PROTOCOL = '/infermesh/probe/1.0.0';
/** stage -> validator (the server) over the stage's WebSocket connection, one stream per request: commitment, challenge, reveal (trust-wire.ts) */
export const TRUST_PROTOCOL = '/infermesh/trust/1.0.0';
