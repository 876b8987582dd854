/**
 * Starts a node:http server on a host and port and stops it for good, dropping kept-alive
 * connections (browsers hold them open). Shared by the server (server.ts) and the e2e tests'
 * static server (static-files.ts), so both report their URL the same way.
 */
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ListeningServer {
  /** Origin with a trailing slash, e.g. 'http://127.0.0.1:41234/'. */
  url: string;
  port: number;
  server: Server;
  close(): Promise<void>;
}

export async function listenHttp(handler: RequestListener, host: string, port: number): Promise<ListeningServer> {
  const server = createServer(handler);
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(port, host, () => {
      server.off('error', fail);
      done();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `http://${urlHost(host)}:${bound}/`,
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
