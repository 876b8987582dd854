/**
 * The route for a request: the chain of stages, covering layers 0..n exactly once in order,
 * with the lowest predicted latency per token — network round trips between consecutive hops
 * (client -> first stage -> ... -> last stage -> client) plus each stage's compute
 * (its layers × its measured ms per layer). Shortest path (Dijkstra) over states
 * "layers done so far, at this peer", as Petals routes over servers; never by join order.
 * A stage runs exactly the range it loaded (its stitched graph), so hops tile the model.
 */
import type { LayerRange } from '../runtime/stage.ts';

export interface RouteStage {
  peerId: string;
  layers: LayerRange;
  msPerLayer: number;
}

export interface Route {
  hops: RouteStage[];
  /** predicted milliseconds per decode step: all round trips and compute */
  predictedMs: number;
}

/** Measured round-trip milliseconds between two peers (the client is a peer too); Infinity if unreachable. */
export type RttLookup = (from: string, to: string) => number;

export function bestRoute(nLayers: number, stages: RouteStage[], rtt: RttLookup, clientId: string): Route | null {
  interface State {
    done: number;
    at: string;
    cost: number;
    hops: RouteStage[];
  }
  const key = (done: number, at: string) => `${done}|${at}`;
  const settled = new Set<string>();
  const frontier: State[] = [{ done: 0, at: clientId, cost: 0, hops: [] }];
  const byStart = new Map<number, RouteStage[]>();
  for (const s of stages) {
    if (s.layers.start < 0 || s.layers.end > nLayers || s.layers.end <= s.layers.start) continue;
    byStart.set(s.layers.start, [...(byStart.get(s.layers.start) ?? []), s]);
  }
  let best: Route | null = null;
  while (frontier.length > 0) {
    // Few states (peers × layer boundaries): a linear scan for the minimum keeps this readable.
    let i = 0;
    for (let j = 1; j < frontier.length; j++) if (frontier[j].cost < frontier[i].cost) i = j;
    const state = frontier.splice(i, 1)[0];
    if (best && state.cost >= best.predictedMs) break;
    const k = key(state.done, state.at);
    if (settled.has(k)) continue;
    settled.add(k);
    if (state.done === nLayers) {
      const total = state.cost + rtt(state.at, clientId);
      if (Number.isFinite(total) && (!best || total < best.predictedMs)) best = { hops: state.hops, predictedMs: total };
      continue;
    }
    for (const next of byStart.get(state.done) ?? []) {
      const hop = rtt(state.at, next.peerId);
      if (!Number.isFinite(hop)) continue;
      const cost = state.cost + hop + (next.layers.end - next.layers.start) * next.msPerLayer;
      if (!settled.has(key(next.layers.end, next.peerId))) frontier.push({ done: next.layers.end, at: next.peerId, cost, hops: [...state.hops, next] });
    }
  }
  return best;
}
