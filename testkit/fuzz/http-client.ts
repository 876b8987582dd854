/**
 * Sends one request as raw bytes over node:net and reads the first response (http-response.ts):
 * the fuzz cases are requests fetch and node:http would refuse to write (junk methods, bad
 * percent-encoding, lying Content-Length, broken chunks). Used by the HTTP family of the fuzz
 * runner (http-run.ts) and by the fuzz test's examples.
 */
import { connect } from 'node:net';
import { declaredTotal, parseHttpResponse } from './http-response.ts';
import type { HttpResponse } from './http-response.ts';
import { ANSWER_DEADLINE_MS } from './deadline.ts';

export interface RawRequest {
  /** request line and headers, through the blank line */
  head: Buffer;
  body?: Buffer;
  /** the method as sent, to know a HEAD response has no body */
  method: string;
  /**
   * The request as sent is not one whole HTTP message (a body shorter than its Content-Length,
   * a chunked body without its last chunk, bytes after the message that are no request): the
   * client half-closes after sending, and the server may close without answering.
   */
  incomplete?: boolean;
}

export type ExchangeOutcome =
  /** a whole response arrived */
  | 'response'
  /** the server closed (or reset) the connection without sending a byte */
  | 'closed-empty'
  /** the server closed the connection inside a response */
  | 'closed-partial'
  /** nothing whole within the deadline */
  | 'timeout'
  /** the connection was refused: nothing listens (the server is down) */
  | 'refused';

export interface HttpExchange {
  outcome: ExchangeOutcome;
  response?: HttpResponse;
  /** every byte received, for leak checks (a canary can hide in a malformed response too) */
  received: Buffer;
  /** why the response could not be read, when it could not */
  detail?: string;
  /** the request's bytes the kernel took before the exchange ended, of `requestBytes` */
  requestBytesWritten: number;
  requestBytes: number;
  ms: number;
}

const INTERIM_ONLY = /^(?:HTTP\/1\.[01] 1\d\d[^\r\n]*\r\n(?:[^\r\n]+\r\n)*\r\n)+$/;

/** Bodies are written in pieces, so a server that refuses early (413) is not sent megabytes more. */
const WRITE_CHUNK = 64 << 10;

export function sendRawHttp(port: number, request: RawRequest, timeoutMs = ANSWER_DEADLINE_MS): Promise<HttpExchange> {
  const t0 = performance.now();
  return new Promise<HttpExchange>((done) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let size = 0;
    /** bytes.length at which the response is whole, once its head says so */
    let wholeAt: number | undefined;
    let received = Buffer.alloc(0);
    const gather = () => {
      if (received.length !== size) received = Buffer.concat(chunks);
      return received;
    };
    let settled = false;
    let errorCode: string | undefined;
    const total = request.head.length + (request.body?.length ?? 0);
    let written = 0;
    const finish = (exchange: Omit<HttpExchange, 'received' | 'ms' | 'requestBytesWritten' | 'requestBytes'>) => {
      if (settled) return;
      gather();
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      done({ ...exchange, received, requestBytesWritten: written, requestBytes: total, ms: performance.now() - t0 });
    };
    const timer = setTimeout(() => finish({ outcome: 'timeout', detail: `${size} bytes in ${timeoutMs} ms` }), timeoutMs);
    const tryParse = (ended: boolean) => {
      if (!ended && wholeAt !== undefined && size < wholeAt) return;
      const parsed = parseHttpResponse(gather(), request.method, ended);
      if (parsed.kind === 'complete') return finish({ outcome: 'response', response: parsed.response });
      if (!ended) return;
      if (size === 0) return finish({ outcome: 'closed-empty', detail: `${errorCode ?? 'closed'} after ${written} of ${total} request bytes` });
      // Only interim responses (100 Continue) came: no answer to the request itself.
      if (INTERIM_ONLY.test(received.toString('latin1'))) return finish({ outcome: 'closed-empty', detail: `${errorCode ?? 'closed'} after an interim response, ${written} of ${total} request bytes` });
      finish({ outcome: 'closed-partial', detail: parsed.kind === 'malformed' ? parsed.reason : 'the connection closed inside the response' });
    };
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      wholeAt ??= declaredTotal(gather(), request.method);
      tryParse(false);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      errorCode = err.code;
      if (err.code === 'ECONNREFUSED') finish({ outcome: 'refused', detail: err.message });
    });
    socket.on('close', () => tryParse(true));
    socket.on('connect', () => void write());

    async function write() {
      const writeAll = (bytes: Buffer) =>
        new Promise<void>((sent) => {
          if (settled || socket.destroyed || size > 0) return sent();
          // Counted once the kernel took them: how far a request got before a reset says who stopped.
          const accepted = socket.write(bytes, (err) => {
            if (!err) written += bytes.length;
          });
          if (accepted) return sent();
          const go = () => {
            socket.off('drain', go);
            socket.off('close', go);
            sent();
          };
          socket.on('drain', go);
          socket.on('close', go);
        });
      await writeAll(request.head);
      const body = request.body ?? Buffer.alloc(0);
      // A server that answered early (413, 400) is not sent the rest: it would only reset the connection.
      for (let at = 0; at < body.length && size === 0 && !settled; at += WRITE_CHUNK) await writeAll(body.subarray(at, at + WRITE_CHUNK));
      if (request.incomplete && !settled && !socket.destroyed) socket.end();
    }
  });
}
