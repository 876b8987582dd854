/**
 * Which clients the coordinator gave a route, and through which first stage. A first stage's
 * inputs are sealed by its client (shared/trust/handoff.ts); the validator accepts that seal
 * only from a client that was routed through that stage, so a first stage cannot make up both
 * a client and its input. Kept in memory, the most recent grants first to stay; a server
 * restart forgets them, and the validator applies the rule only to commitments it receives live.
 */
export interface RouteGrants {
  grant(client: string, firstStage: string): void;
  granted(client: string, firstStage: string): boolean;
}

/** Pairs remembered; beyond it the oldest grant is forgotten. */
export const MAX_ROUTE_GRANTS = 100_000;

export function createRouteGrants(options: { max?: number } = {}): RouteGrants {
  const max = options.max ?? MAX_ROUTE_GRANTS;
  // Map order is recency order: a pair granted again moves to the end.
  const grants = new Set<string>();
  const key = (client: string, firstStage: string) => `${client} ${firstStage}`;
  return {
    grant(client, firstStage) {
      const k = key(client, firstStage);
      grants.delete(k);
      grants.add(k);
      if (grants.size > max) grants.delete(grants.values().next().value!);
    },
    granted: (client, firstStage) => grants.has(key(client, firstStage)),
  };
}
