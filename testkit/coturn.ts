/**
 * A real coturn TURN server for tests, on loopback or at an address in a network namespace (`turnserver`, Debian's coturn package;
 * scripts/ensure-test-tools.mjs installs it as root): REST credentials from a shared secret
 * (use-auth-secret), UDP only, relaying between loopback peers. Stopped by `stop()`.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { answersStun } from './stun-ping.ts';

/** Where a coturn runs: on loopback (default), or at `ip` inside a network namespace (testkit/nat/nat-lab.ts). */
export interface CoturnPlace {
  ip: string;
  port: number;
  /** starts a program inside the namespace */
  spawnIn(command: string, args: string[]): ChildProcess;
}

const STUN_PING = fileURLToPath(new URL('./stun-ping.ts', import.meta.url));

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

export async function startCoturn(secret: string, dir: string, place?: CoturnPlace): Promise<Coturn> {
  const ip = place?.ip ?? '127.0.0.1';
  const port = place?.port ?? (await freeUdpPort());
  const relayPorts = 40000 + (port % 20000);
  const args = ['-n', `--listening-ip=${ip}`, `--relay-ip=${ip}`, `--listening-port=${port}`, `--min-port=${relayPorts}`, `--max-port=${relayPorts + 200}`, '--use-auth-secret', `--static-auth-secret=${secret}`, '--realm=infermesh.test', '--no-tls', '--no-dtls', '--no-tcp', ...(place ? [] : ['--allow-loopback-peers']), '--no-cli', `--pidfile=${join(dir, 'turnserver.pid')}`, `--userdb=${join(dir, 'turndb')}`, '--log-file=stdout'];
  const server = place ? place.spawnIn('turnserver', args) : spawn('turnserver', args, { stdio: 'ignore' });
  const exited = new Promise<never>((_, reject) => server.once('exit', (code) => reject(new Error(`turnserver exited with ${code}`))));
  // Up once it answers STUN: asked from where it listens (inside its namespace, when it has one).
  const answered = place
    ? new Promise<void>((resolve, reject) => {
        const ping = place.spawnIn(process.execPath, [STUN_PING, ip, String(port), '5000']);
        ping.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`turnserver did not answer STUN on ${ip}:${port}`))));
      })
    : answersStun(ip, port, 5_000);
  try {
    await Promise.race([answered, exited]);
  } catch (err) {
    server.kill();
    throw err;
  }
  exited.catch(() => undefined);
  return { url: `turn:${ip}:${port}?transport=udp`, stop: () => void server.kill() };
}
