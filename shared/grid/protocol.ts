/**
 * The grid's wire contract: the coordinator's messages and the types every protocol shares
 * (peer addresses, route hops, device summaries). The protocol ids and who speaks each are in
 * protocol-ids.ts. Control messages (coordinator, piece requests) are small JSON documents,
 * length-prefixed; tensors and piece bytes are binary (shared/protocol/frame.ts,
 * shared/grid/stage-wire.ts), never JSON.
 */
import type { LayerRange } from '../runtime/stage.ts';
import type { PieceKey } from '../swarm/piece-plan.ts';

/** Largest control message (JSON) on any grid protocol. */
export const MAX_CONTROL_BYTES = 1 << 20;

/** A peer as others reach it: its id and the multiaddrs it listens on (relay + /webrtc). */
export interface PeerAddress {
  peerId: string;
  addrs: string[];
}

/** What a tab tells the coordinator about its device (from the engine's handshake). */
export interface DeviceSummary {
  executionProvider: 'webgpu' | 'wasm' | 'cpu';
  /** measured milliseconds per layer per decode step for the served model's layer shape */
  msPerLayer: number;
  /** bytes the tab offers for weights and caches */
  memoryBytes: number;
  /** device signature (shared with the trust layer; stable per device) */
  signature: string;
  /** adapter description for people, e.g. "google swiftshader" */
  label: string;
  /** the handshake's matmul GFLOP/s on the tab's provider (WebGPU's shader, or onnxruntime's CPU matmul), when measured */
  gflops?: number;
}

/** A tab's running totals, for the coordinator's registry and the dashboards. */
export interface ServingStats {
  requestsServed: number;
  tokensServed: number;
  /** decode steps per second over the last few seconds */
  tokensPerSecond: number;
  /**
   * milliseconds per layer per decode step as served (median of recent steps ÷ layers): the
   * handshake measures it once, often while other tabs compete for the machine; this is the
   * figure routes then use
   */
  msPerLayer?: number;
}

/** Messages a tab (or SDK client) sends to the coordinator. */
export type ToCoordinator =
  | {
      type: 'hello';
      role: 'donor' | 'client';
      addrs: string[];
      device?: DeviceSummary;
      /** a donor's EVM address for earnings (and its sponsored stake) */
      payTo?: string;
      /**
       * a donor that lost its session and joins again while serving: the range it serves, which
       * it keeps (no new download, no reload) unless placement would move it anyway
       */
      layers?: LayerRange;
    }
  | { type: 'have'; packageId: string; pieces: PieceKey[] }
  | { type: 'serving'; packageId: string; layers: LayerRange }
  | { type: 'rtt'; peers: Record<string, { rttMs: number; throughputMBps?: number }> }
  | { type: 'stats'; stats: ServingStats };

/** A model the grid serves, as the coordinator announces it. */
export interface ModelOffer {
  packageId: string;
  name: string;
  nLayers: number;
  /** HTTP base URL of the package (the web seed), ending in '/' */
  packageUrl: string;
}

/** Messages the coordinator sends to a tab. */
export type FromCoordinator =
  | { type: 'welcome'; peerId: string; model: ModelOffer }
  | { type: 'assign'; packageId: string; layers: LayerRange }
  | { type: 'peers'; peers: (PeerAddress & { have: PieceKey[]; serving?: LayerRange })[] }
  | { type: 'verdict'; verdict: VerdictNotice }
  | { type: 'error'; name: string; message: string };

/**
 * The validator's finding against a stage, sent to every peer: the stage itself (its page shows
 * it), clients (a route through it is not used again) and donors.
 */
export interface VerdictNotice {
  peerId: string;
  requestId: string;
  layers: LayerRange;
  /** why, for people: which check failed and by how much */
  reason: string;
  /** SHA-256 (hex) of the evidence: the signed commitment the verdict rests on */
  evidenceHash: string;
  /** the slashing transaction, when the chain took it */
  slashTx?: string;
}

/** One hop of a route, as a client receives it and stages forward it. */
export interface RouteHop extends PeerAddress {
  layers: LayerRange;
}
