/**
 * A real coturn TURN server on loopback for tests (`turnserver`, Debian's coturn package;
 * scripts/ensure-coturn.mjs installs it as root): REST credentials from a shared secret
 * (use-auth-secret), UDP only, relaying between loopback peers. Stopped by `stop()`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { join } from 'node:path';

export interface Coturn {
  /** e.g. turn:127.0.0.1:41234?transport=udp */
  url: string;
  stop(): void;
}

/** Why coturn cannot run here (no turnserver binary), or undefined. */
export function coturnMissing(): string | undefined {
  const found = spawnSync('turnserver', ['--help'], { stdio: 'ignore' });
  return found.error ? `no turnserver (Debian's coturn): ${found.error.message}; install it with apt-get install -y coturn` : undefined;
}

async function freeUdpPort(): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

/** Resolves once a STUN binding request to `port` is answered: the server is up. */
async function answersStun(port: number, timeoutMs: number): Promise<void> {
  const socket = createSocket('udp4');
  const request = Buffer.alloc(20);
  request.writeUInt16BE(0x0001, 0); // Binding Request, no attributes
  request.writeUInt32BE(0x2112a442, 4); // magic cookie
  randomFillSync(request, 8, 12);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`turnserver did not answer STUN on 127.0.0.1:${port} within ${timeoutMs} ms`)), timeoutMs);
      const retry = setInterval(() => socket.send(request, port, '127.0.0.1'), 100);
      socket.once('message', () => {
        clearTimeout(timer);
        clearInterval(retry);
        resolve();
      });
      socket.send(request, port, '127.0.0.1');
    });
  } finally {
    socket.close();
  }
}

export async function startCoturn(secret: string, dir: string): Promise<Coturn> {
  const port = await freeUdpPort();
  const relayPorts = 40000 + (port % 20000);
  const args = ['-n', '--listening-ip=127.0.0.1', '--relay-ip=127.0.0.1', `--listening-port=${port}`, `--min-port=${relayPorts}`, `--max-port=${relayPorts + 200}`, '--use-auth-secret', `--static-auth-secret=${secret}`, '--realm=infermesh.test', '--no-tls', '--no-dtls', '--no-tcp', '--allow-loopback-peers', '--no-cli', `--pidfile=${join(dir, 'turnserver.pid')}`, `--userdb=${join(dir, 'turndb')}`, '--log-file=stdout'];
  const server = spawn('turnserver', args, { stdio: 'ignore' });
  const exited = new Promise<never>((_, reject) => server.once('exit', (code) => reject(new Error(`turnserver exited with ${code}`))));
  try {
    await Promise.race([answersStun(port, 5_000), exited]);
  } catch (err) {
    server.kill();
    throw err;
  }
  exited.catch(() => undefined);
  return { url: `turn:127.0.0.1:${port}?transport=udp`, stop: () => void server.kill() };
}
