/**
 * Who may call the OpenAI gateway, and how much: `Authorization: Bearer <key>` checked against
 * the key store (key-store.ts) on every request. Where keys are required (a grid reachable beyond
 * this machine, unless the operator opened the gateway) a call without one, or with one the
 * grid never made or revoked, is a 401. On an open gateway (loopback) anyone is answered: a key
 * of this grid is metered, any other (the official clients always send one, e.g. "none") is
 * taken as no key. A key past its token budget gets 429
 * `insufficient_quota`; one past its requests or tokens per minute, 429 `rate_limit_exceeded`
 * with Retry-After. Answers are OpenAI-shaped (http/errors.ts). Spending is charged after a
 * request from its usage, so a budget can be overshot by at most one request's tokens.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { HttpError } from '../http/errors.ts';
import type { ApiKeyRecord, KeyStore } from './key-store.ts';

/** No usable key: none sent where one is required, an unknown one, or a revoked one (401). */
export class ApiKeyError extends HttpError {
  override name = 'ApiKeyError';
  constructor(message: string, code: 'missing_api_key' | 'invalid_api_key') {
    super(401, message, { code, headers: { 'WWW-Authenticate': 'Bearer realm="infermesh"' } });
  }
}

/** A key that spent its budget (429 insufficient_quota: retrying does not help). */
export class KeyBudgetError extends HttpError {
  override name = 'KeyBudgetError';
  constructor(message: string) {
    super(429, message, { type: 'insufficient_quota', code: 'insufficient_quota' });
  }
}

/** A key over its rate (429 rate_limit_exceeded, with Retry-After). */
export class KeyRateError extends HttpError {
  override name = 'KeyRateError';
  constructor(message: string, retryAfterSeconds: number) {
    super(429, message, { type: 'requests', code: 'rate_limit_exceeded', headers: { 'Retry-After': String(retryAfterSeconds) } });
  }
}

export interface GatewayKeysOptions {
  /** whether a call without a key is refused */
  required: boolean;
}

export interface GatewayKeysDeps {
  keys: KeyStore;
  now?: () => number;
}

/** A request let in: its key (none on an open gateway called without one), charged once it is done. */
export interface Admission {
  key?: ApiKeyRecord;
  charge(tokens: number): void;
}

export interface GatewayKeys {
  readonly required: boolean;
  /** Lets a request in or throws why not. */
  admit(headers: IncomingHttpHeaders): Admission;
}

const WINDOW_MS = 60_000;
const HOW_TO = 'send Authorization: Bearer <key>; the operator makes keys with `infermesh keys create`';

/** The bearer token of an Authorization header, or undefined when there is none. */
export function bearerToken(headers: IncomingHttpHeaders): string | undefined {
  const value = headers.authorization;
  if (value === undefined) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(value);
  if (!match) throw new ApiKeyError(`the Authorization header must be "Bearer <key>"; ${HOW_TO}`, 'invalid_api_key');
  return match[1];
}

export function createGatewayKeys(options: GatewayKeysOptions, deps: GatewayKeysDeps): GatewayKeys {
  const now = deps.now ?? Date.now;
  /** per key: when its recent requests came, and the tokens it was charged when (the last minute's) */
  const recent = new Map<string, { requests: number[]; tokens: [number, number][] }>();

  function windowOf(id: string, at: number) {
    const w = recent.get(id) ?? { requests: [], tokens: [] };
    w.requests = w.requests.filter((t) => t > at - WINDOW_MS);
    w.tokens = w.tokens.filter(([t]) => t > at - WINDOW_MS);
    recent.set(id, w);
    return w;
  }

  const retryAfter = (oldest: number, at: number) => Math.max(1, Math.ceil((oldest + WINDOW_MS - at) / 1000));

  function check(key: ApiKeyRecord, at: number): void {
    if (key.budgetTokens !== undefined && key.spentTokens >= key.budgetTokens) {
      throw new KeyBudgetError(`API key ${key.id} has spent its budget of ${key.budgetTokens} tokens (${key.spentTokens} used); ask the operator for more`);
    }
    const w = windowOf(key.id, at);
    if (key.requestsPerMinute !== undefined && w.requests.length >= key.requestsPerMinute) {
      throw new KeyRateError(`API key ${key.id} is limited to ${key.requestsPerMinute} requests per minute`, retryAfter(w.requests[0], at));
    }
    const tokens = w.tokens.reduce((sum, [, n]) => sum + n, 0);
    if (key.tokensPerMinute !== undefined && tokens >= key.tokensPerMinute) {
      throw new KeyRateError(`API key ${key.id} is limited to ${key.tokensPerMinute} tokens per minute (${tokens} in the last minute)`, retryAfter(w.tokens[0][0], at));
    }
    w.requests.push(at);
  }

  return {
    required: options.required,
    admit(headers) {
      const secret = bearerToken(headers);
      if (secret === undefined) {
        if (options.required) throw new ApiKeyError(`this grid's API needs a key: ${HOW_TO}`, 'missing_api_key');
        return { charge() {} };
      }
      const key = deps.keys.find(secret);
      if (!options.required && (!key || key.revokedAt !== undefined)) return { charge() {} };
      if (!key) throw new ApiKeyError(`the API key is not one of this grid's; ${HOW_TO}`, 'invalid_api_key');
      if (key.revokedAt !== undefined) throw new ApiKeyError(`API key ${key.id} was revoked`, 'invalid_api_key');
      check(key, now());
      let charged = false;
      return {
        key,
        charge(tokens) {
          if (charged) return;
          charged = true;
          deps.keys.charge(key.id, tokens);
          const at = now();
          windowOf(key.id, at).tokens.push([at, tokens]);
        },
      };
    },
  };
}
