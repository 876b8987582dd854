/**
 * What a request names: the URL in its request line, and the parameters in its path. Node's
 * HTTP parser passes request targets that are not URLs (`//[`, `//%2f%c0%ae`): `new URL` would
 * throw on them, so everything that reads a target goes through here and gets a 400 that names
 * it instead. Used by server.ts and the API handlers that take a parameter from their path.
 */
import { BadRequestTargetError, InvalidPathParameterError } from './errors.ts';

/** The base of an origin-form target: only its path and query matter here. */
const ORIGIN = 'http://localhost';

/**
 * '[' and ']' delimit an IP literal in an authority and may appear nowhere in a path (RFC 3986
 * §3.3); browsers percent-encode them. Other characters RFC 3986 leaves out of paths ('|', '^')
 * are let through, as WHATWG URLs send them raw.
 */
const NOT_IN_A_PATH = /[[\]]/;

/**
 * The URL of a request target (RFC 9112 §3.2): origin-form (`/path?query`, where `//x` is a
 * path, not an authority) or absolute-form (`http://host/path`, sent to proxies). Anything
 * else, the asterisk-form `*` and `//[` included, is a BadRequestTargetError.
 */
export function parseRequestTarget(target: string | undefined): URL {
  const raw = target ?? '/';
  let url: URL;
  try {
    if (raw.startsWith('/')) url = new URL(`${ORIGIN}${raw}`);
    else if (/^https?:\/\//i.test(raw)) url = new URL(raw);
    else throw new BadRequestTargetError(raw);
  } catch (err) {
    throw err instanceof BadRequestTargetError ? err : new BadRequestTargetError(raw, err);
  }
  const path = raw.startsWith('/') ? raw.split('?')[0] : url.pathname;
  if (NOT_IN_A_PATH.test(path)) throw new BadRequestTargetError(raw);
  return url;
}

/**
 * The decoded rest of `url`'s path after `prefix` (e.g. the id in `/v1/models/<id>`), named
 * `param` in the error when it is not percent-encoded UTF-8 (`%ZZ`, `%C0`).
 */
export function pathParameter(url: URL, prefix: string, param: string): string {
  const raw = url.pathname.slice(prefix.length);
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new InvalidPathParameterError(param, raw);
  }
}
