/**
 * Starts a node:http server on a host and port and stops it for good, dropping kept-alive
 * connections (browsers hold them open). Shared by the server (server.ts) and the e2e tests'
 * static server (static-files.ts), so both report their URL the same way and both drop clients
 * that send a request too slowly to hold a connection (slowloris).
 */
import { createServer, type RequestListener, type Server } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

export interface ListeningServer {
  /** Origin with a trailing slash, e.g. 'http://127.0.0.1:41234/'. */
  url: string;
  port: number;
  server: Server;
  close(): Promise<void>;
}

export interface ListenOptions {
  /** false: requests without a Host header reach the handler, which answers them (default: Node's bare 400) */
  requireHostHeader?: boolean;
  /** PEM certificate chain and key: serve https (tls-files.ts checks them first) */
  tls?: { cert: string; key: string };
}

/** A request line and headers take at most this long to arrive (Node's default is 60 s). */
export const HEADERS_TIMEOUT_MS = 10_000;
/** A whole request, body included, takes at most this long: 1 MiB at 35 KB/s. */
export const REQUEST_TIMEOUT_MS = 30_000;
/** How often Node checks those timeouts (default 30 s, which would let a slow request live a minute). */
const TIMEOUT_CHECK_INTERVAL_MS = 2_000;

export async function listenHttp(handler: RequestListener, host: string, port: number, options: ListenOptions = {}): Promise<ListeningServer> {
  const settings = { headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS, connectionsCheckingInterval: TIMEOUT_CHECK_INTERVAL_MS, requireHostHeader: options.requireHostHeader ?? true };
  const server: Server = options.tls ? createTlsServer({ ...settings, cert: options.tls.cert, key: options.tls.key }, handler) : createServer(settings, handler);
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(port, host, () => {
      server.off('error', fail);
      done();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `${options.tls ? 'https' : 'http'}://${urlHost(host)}:${bound}/`,
    port: bound,
    server,
    close: () =>
      new Promise<void>((done, fail) => {
        server.close((err) => (err ? fail(err) : done()));
        server.closeAllConnections();
      }),
  };
}

/** A host a local client can dial: the wildcard addresses listen everywhere, loopback included. */
function urlHost(host: string): string {
  if (host === '' || host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}
