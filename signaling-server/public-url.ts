/**
 * The address a grid is reached at from outside (`serve --public-url`, INFERMESH_PUBLIC_URL): an
 * https origin in front of the server (a reverse proxy terminating TLS, or the server itself),
 * whose pages, API and relay share one port. The relay is advertised there as
 * `/dns4/<host>/tcp/<port>/wss` (relay.ts announce), so a tab on another machine dials the
 * origin it loaded the page from, never the listen address.
 */
import { isIP } from 'node:net';
import { InfermeshError } from '../shared/errors.ts';

/** A public URL that no remote visitor could use, named with the reason. */
export class PublicUrlError extends InfermeshError {
  override name = 'PublicUrlError';
}

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '[::1]']);

/** Whether `hostname` (as URL gives it) is this machine only. */
export function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK_NAMES.has(hostname) || hostname.endsWith('.localhost') || /^127\.\d+\.\d+\.\d+$/.test(hostname) || hostname === '::1';
}

/** Whether a server listening on `host` and advertised at `publicUrl` can be reached from other machines. */
export function reachableBeyondThisMachine(host: string, publicUrl: URL | undefined): boolean {
  return publicUrl !== undefined || !isLoopbackHost(host.replace(/^\[(.*)\]$/, '$1'));
}

/**
 * Checks a public URL: http or https, https unless it is loopback (a remote page over http gets
 * no secure context: no WebGPU, no threads), an origin with no path, query or credentials (the
 * relay and every page live at the root).
 */
export function parsePublicUrl(value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new PublicUrlError(`${JSON.stringify(value)} is not a URL (e.g. https://grid.example.org)`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new PublicUrlError(`${JSON.stringify(value)} must be an https:// URL, not ${url.protocol}`);
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
    throw new PublicUrlError(`${JSON.stringify(value)} must be https://: a page loaded over plain http from another machine has no secure context (no WebGPU, no threads)`);
  }
  if (url.username || url.password) throw new PublicUrlError(`${JSON.stringify(value)} must not carry credentials`);
  if (url.pathname !== '/' || url.search || url.hash) throw new PublicUrlError(`${JSON.stringify(value)} must be an origin only (the grid's pages and relay are at its root), without ${url.pathname !== '/' ? `the path ${url.pathname}` : 'a query or fragment'}`);
  return url;
}

/** The relay's multiaddr at `url`'s origin: WebSocket (wss for https) on its port. */
export function relayMultiaddr(url: URL): string {
  const secure = url.protocol === 'https:';
  const port = url.port || (secure ? '443' : '80');
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const kind = isIP(host) === 4 ? 'ip4' : isIP(host) === 6 ? 'ip6' : 'dns4';
  return `/${kind}/${host}/tcp/${port}/${secure ? 'wss' : 'ws'}`;
}
