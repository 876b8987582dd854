/**
 * A TLS terminator for tests, as an operator's reverse proxy would stand in front of a grid: it
 * takes https/wss on its own port with a self-signed certificate (made by openssl for localhost
 * and 127.0.0.1) and pipes the bytes to the server's plain port, WebSocket upgrades included.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:tls';
import type { AddressInfo } from 'node:net';

export interface TlsProxy {
  /** https://localhost:<port>/ */
  url: string;
  port: number;
  /** where the bytes go: the server's plain port (set once it listens) */
  target(port: number): void;
  close(): Promise<void>;
}

/** A self-signed certificate and key for localhost, valid for a day. */
export function selfSignedCertificate(): { cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), 'infermesh-tls-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    return { cert: readFileSync(join(dir, 'cert.pem'), 'utf8'), key: readFileSync(join(dir, 'key.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function startTlsProxy(): Promise<TlsProxy> {
  let targetPort = 0;
  const server = createServer(selfSignedCertificate(), (client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://localhost:${port}/`,
    port,
    target: (p) => void (targetPort = p),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
