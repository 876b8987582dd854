/**
 * Runs one HTTP fuzz case and judges the exchange by issue 22's rules: an answer within the
 * deadline (a bare 4xx and a close, as Node refuses an unparseable request, counts; a silent
 * close does not, unless the client itself never finished the request), no 5xx but 503, 503 with
 * Retry-After, OpenAI-shaped JSON error bodies on /api and /v1, the endpoint's normal answer
 * to a valid request, and no byte of a file outside the served folders. Used by run-fuzz.ts
 * and the fuzz test's examples.
 */
import { sendRawHttp } from './http-client.ts';
import type { HttpExchange, RawRequest } from './http-client.ts';
import type { HttpResponse } from './http-response.ts';
import { renderHttpCase, targetOf } from './http-cases.ts';
import type { HttpCase } from './http-cases.ts';
import type { CaseOutcome, Finding } from './findings.ts';

/** Strings no served file contains: the sandbox's canary, and the first line of /etc/passwd. */
export interface LeakMarkers {
  canary: string;
}

const PASSWD = 'root:x:0:0';

/**
 * The path a request names (RFC 9112 §3.2): in origin-form the target is the path itself, so
 * `//x/v1/models` is a path under `//x`, not the authority x's /v1/models; in absolute-form
 * (`http://host/path`) it is the URL's path. Dot segments are resolved as a URL parser does.
 * When no parser can read the target, its raw path.
 */
export function routedPath(target: string): string {
  try {
    if (target.startsWith('/')) return new URL(`http://localhost${target}`).pathname;
    if (/^https?:\/\//i.test(target)) return new URL(target).pathname;
  } catch {
    // Not a URL: the raw path below.
  }
  return target.split(/[?#]/)[0];
}

export const isApiPath = (path: string) => /^\/(api|v1)(\/|$)/.test(path);

/** Why `response` is not an OpenAI-shaped JSON error, or undefined when it is one. */
export function errorBodyProblem(response: HttpResponse, method: string): string | undefined {
  const type = response.headers['content-type'] ?? '';
  if (!/^application\/json\b/i.test(type)) return `content-type ${JSON.stringify(type)}`;
  if (method === 'HEAD') return undefined;
  let body: unknown;
  try {
    body = JSON.parse(response.body.toString('utf8'));
  } catch {
    return `body is not JSON: ${JSON.stringify(response.body.toString('utf8').slice(0, 80))}`;
  }
  const error = (body as { error?: Record<string, unknown> } | null)?.error;
  if (!error || typeof error !== 'object') return `no "error" object: ${JSON.stringify(body).slice(0, 120)}`;
  if (typeof error.message !== 'string' || typeof error.type !== 'string') return `error.message and error.type must be strings: ${JSON.stringify(error).slice(0, 120)}`;
  for (const key of ['param', 'code']) {
    if (!(key in error) || (error[key] !== null && typeof error[key] !== 'string')) return `error.${key} must be a string or null: ${JSON.stringify(error).slice(0, 120)}`;
  }
  return undefined;
}

const snippet = (r: HttpResponse) => JSON.stringify(r.body.toString('utf8').slice(0, 160));

export function judgeHttpExchange(c: HttpCase, request: RawRequest, exchange: HttpExchange, markers: LeakMarkers): CaseOutcome {
  const findings: Finding[] = [];
  const text = exchange.received.toString('latin1');
  if (text.includes(markers.canary)) findings.push({ kind: 'file-leak', detail: 'the response carries the canary file' });
  if (text.includes(PASSWD)) findings.push({ kind: 'file-leak', detail: 'the response carries /etc/passwd' });
  const r = exchange.response;
  if (!r) {
    // A client that ends its side inside its own request (a body shorter than it declared) has
    // sent a malformed request; the server may drop the connection, even inside a response it
    // had started before the body was due (a static file).
    if ((exchange.outcome === 'closed-empty' || exchange.outcome === 'closed-partial') && request.incomplete) return { outcome: 'closed (request incomplete)', findings };
    const why = exchange.outcome === 'timeout' ? `no whole response within the deadline (${exchange.detail})` : exchange.outcome === 'closed-empty' ? `closed without a byte${exchange.detail ? ` (${exchange.detail})` : ''}` : `${exchange.outcome}: ${exchange.detail ?? ''}`;
    findings.push({ kind: 'no-answer', detail: why });
    // A reset while the request was still going out (a server refusing early and closing unread bytes) is its own group.
    const midRequest = exchange.outcome === 'closed-empty' && exchange.requestBytesWritten < exchange.requestBytes;
    return { outcome: midRequest ? 'closed-empty mid-request' : exchange.outcome, findings };
  }
  const outcome = r.bareReject ? `${r.status} bare` : String(r.status);
  if (r.status >= 500 && r.status !== 503) findings.push({ kind: 'server-error', detail: `${r.status} ${snippet(r)}` });
  if (r.status === 503 && r.headers['retry-after'] === undefined) findings.push({ kind: 'missing-retry-after', detail: `503 ${snippet(r)}` });
  if (r.status >= 400 && !r.bareReject && isApiPath(routedPath(targetOf(c)))) {
    const problem = errorBodyProblem(r, c.method);
    if (problem) findings.push({ kind: 'bad-error-body', detail: `${r.status}: ${problem}` });
  }
  if (c.expect && !c.expect.includes(r.status)) findings.push({ kind: 'wrong-status', detail: `${r.status}, not ${c.expect.join('|')}: ${snippet(r)}` });
  return { outcome, findings };
}

export async function runHttpCase(c: HttpCase, port: number, markers: LeakMarkers): Promise<CaseOutcome & { refused: boolean }> {
  const request = renderHttpCase(c);
  const exchange = await sendRawHttp(port, request);
  return { ...judgeHttpExchange(c, request, exchange, markers), refused: exchange.outcome === 'refused' };
}
