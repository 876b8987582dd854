/**
 * A STUN binding request answered, or not: whether a STUN/TURN server is up. Imported by
 * testkit/coturn.ts, and run as a program inside a network namespace the caller cannot reach
 * from its own (`node testkit/stun-ping.ts <host> <port> <timeoutMs>`: exit code 0 once answered).
 */
import { randomFillSync } from 'node:crypto';
import { createSocket } from 'node:dgram';

/** Resolves once a STUN binding request to `port` is answered: the server is up. */
export async function answersStun(host: string, port: number, timeoutMs: number): Promise<void> {
  const socket = createSocket('udp4');
  const request = Buffer.alloc(20);
  request.writeUInt16BE(0x0001, 0); // Binding Request, no attributes
  request.writeUInt32BE(0x2112a442, 4); // magic cookie
  randomFillSync(request, 8, 12);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`turnserver did not answer STUN on ${host}:${port} within ${timeoutMs} ms`)), timeoutMs);
      const retry = setInterval(() => socket.send(request, port, host), 100);
      socket.once('message', () => {
        clearTimeout(timer);
        clearInterval(retry);
        resolve();
      });
      socket.send(request, port, host);
    });
  } finally {
    socket.close();
  }
}


if (process.argv[1] && import.meta.filename === process.argv[1]) {
  const [host, port, timeoutMs] = process.argv.slice(2);
  answersStun(host, Number(port), Number(timeoutMs)).then(
    () => process.exit(0),
    (err: Error) => {
      console.error(err.message);
      process.exit(1);
    },
  );
}
