/**
 * GET /api/route's query: which package (this grid's, when named), which client asks (its
 * peer id: grants are remembered per client) and which stages it wants left out (ones it saw
 * fail or stall). Bounded, and refused by name (400/404) field by field.
 */
import { HttpError } from './errors.ts';

/** The longest client id /api/route takes: peer ids are 52 characters (Ed25519) or 46 (RSA). */
export const MAX_CLIENT_ID_CHARS = 128;

/** Stages a client may ask a route to leave out: more than any route has, few enough to check at once. */
export const MAX_AVOIDED_STAGES = 64;

export interface RouteQuery {
  client?: string;
  avoid: Set<string>;
}

export function parseRouteQuery(params: URLSearchParams, packageId: string): RouteQuery {
  const requested = params.get('package');
  if (requested && requested !== packageId) throw new HttpError(404, `this grid serves package ${packageId}, not ${requested.slice(0, 80)}`, { code: 'model_not_found' });
  const client = params.get('client') ?? undefined;
  // Grants are remembered per client id (a peer id, ~52 characters): a longer one is no peer's.
  if (client !== undefined && (client.length === 0 || client.length > MAX_CLIENT_ID_CHARS)) {
    throw new HttpError(400, `client must be a peer id of 1 to ${MAX_CLIENT_ID_CHARS} characters`, { code: 'invalid_client', param: 'client' });
  }
  return { client, avoid: avoidedStages(params.get('avoid')) };
}

/** `avoid`: comma-separated peer ids. */
function avoidedStages(param: string | null): Set<string> {
  if (param === null || param === '') return new Set();
  const ids = param.split(',');
  if (ids.length > MAX_AVOIDED_STAGES || ids.some((id) => id.length === 0 || id.length > MAX_CLIENT_ID_CHARS)) {
    throw new HttpError(400, `avoid must be up to ${MAX_AVOIDED_STAGES} comma-separated peer ids of 1 to ${MAX_CLIENT_ID_CHARS} characters`, { code: 'invalid_avoid', param: 'avoid' });
  }
  return new Set(ids);
}
