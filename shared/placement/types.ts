/** The grid's view of nodes and the layer ranges they serve, as placement and routing see it. */
import type { LayerRange } from '../runtime/stage.ts';

export interface NodeCapacity {
  id: string;
  /** bytes the node can give to layer weights and caches (measured: quota, device limits) */
  memoryBytes: number;
  /** the engine's measured milliseconds per layer per decode step (device handshake) */
  msPerLayer: number;
}

export interface ModelShape {
  nLayers: number;
  /** weights plus the cache budget one layer needs on a node */
  bytesPerLayer: number;
}

export interface Assignment {
  nodeId: string;
  layers: LayerRange;
}

/** Decode steps per second a node sustains per layer it serves: what Petals calls throughput. */
export const throughputOf = (node: Pick<NodeCapacity, 'msPerLayer'>) => 1000 / node.msPerLayer;
