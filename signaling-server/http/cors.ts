/**
 * The answer to a CORS preflight, for both kinds of route the server has (the API, the static
 * files): the methods a cross-origin page may use and the request headers it may send, for a day.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface PreflightPolicy {
  /** the headers every answer of these routes carries */
  headers: Record<string, string>;
  methods: string;
  /** the request headers allowed when the browser names none in Access-Control-Request-Headers */
  allowedHeaders: string;
}

export function answerPreflight(req: IncomingMessage, res: ServerResponse, policy: PreflightPolicy): void {
  res.writeHead(204, {
    ...policy.headers,
    'access-control-allow-methods': policy.methods,
    'access-control-allow-headers': req.headers['access-control-request-headers'] ?? policy.allowedHeaders,
    'access-control-max-age': '86400',
  });
  res.end();
}
