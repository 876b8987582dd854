/**
 * Request bodies under two limits: one body's size (a 413 that names it), and the bytes of every
 * body the server holds at once. Without the second, a few hundred clients each sending a body
 * just under the first can still take the process's memory; with it, the one past the budget
 * gets a 503 to retry, and the bytes held (raw, and the parsed JSON while its request is being
 * answered) stay bounded. Used by server.ts for the API routes.
 */
import type { IncomingMessage } from 'node:http';
import { InvalidJsonError, RequestTooLargeError, ServerBusyError } from './errors.ts';

/** Bytes of bodies held by every request in flight, shared by a server's requests. */
export interface BodyBudget {
  /** Takes `bytes` from the budget, or returns false when that would exceed it. */
  take(bytes: number): boolean;
  give(bytes: number): void;
}

export function createBodyBudget(maxBytes: number): BodyBudget {
  let held = 0;
  return {
    take(bytes) {
      if (held + bytes > maxBytes) return false;
      held += bytes;
      return true;
    },
    give(bytes) {
      held = Math.max(0, held - bytes);
    },
  };
}

const busy = () => new ServerBusyError('the server is holding as many request bodies as it takes at once; retry shortly');

export interface ReadBody {
  /** the parsed JSON body, undefined when there is none */
  body: unknown;
  /** bytes the body holds in the budget; give them back when the request is answered */
  held: number;
}

/**
 * Reads and parses a JSON body of at most `limit` bytes, holding its bytes in `budget` as they
 * arrive. On a failure the bytes taken so far are given back before it rejects.
 */
export function readJsonBody(req: IncomingMessage, limit: number, budget: BodyBudget): Promise<ReadBody> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) return Promise.reject(new RequestTooLargeError(limit));
  return new Promise((done, fail) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    const stop = (err: Error) => {
      if (failed) return;
      failed = true;
      budget.give(size);
      chunks.length = 0;
      // The rest of the body is read and dropped, held nowhere, so the client reads the answer
      // instead of a reset; the server's request timeout bounds how long that may take.
      fail(err);
    };
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      if (size + chunk.byteLength > limit) return stop(new RequestTooLargeError(limit));
      if (!budget.take(chunk.byteLength)) return stop(busy());
      size += chunk.byteLength;
      chunks.push(chunk);
    });
    req.on('error', stop);
    req.on('end', () => {
      if (failed) return;
      if (size === 0) return done({ body: undefined, held: 0 });
      try {
        done({ body: JSON.parse(Buffer.concat(chunks, size).toString('utf8')), held: size });
      } catch (err) {
        stop(new InvalidJsonError(err));
      }
    });
  });
}
