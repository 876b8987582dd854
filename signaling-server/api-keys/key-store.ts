/**
 * The OpenAI gateway's API keys, in keys.sqlite in the server's data folder: `infermesh keys`
 * creates, lists and revokes them while the server runs, and the server reads a key's row on
 * every request, so a revocation holds at once. Only a key's SHA-256 is stored: the secret is
 * shown once, when it is made. Each key has a token budget (prompt and completion tokens, all
 * its requests together) and rate limits, enforced by gateway-keys.ts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { InfermeshError } from '../../shared/errors.ts';
import { openSqlite } from '../sqlite.ts';

/** The keys file cannot be opened or used. */
export class KeyStoreError extends InfermeshError {
  override name = 'KeyStoreError';
}

export interface ApiKeyLimits {
  /** prompt and completion tokens this key may spend in all; undefined = no budget */
  budgetTokens?: number;
  /** requests per minute; undefined = no limit */
  requestsPerMinute?: number;
  /** prompt and completion tokens per minute; undefined = no limit */
  tokensPerMinute?: number;
}

export interface ApiKeyRecord extends ApiKeyLimits {
  /** the key's public id, e.g. key_3f9a1c2b (shown in lists and errors; not a secret) */
  id: string;
  name: string;
  spentTokens: number;
  requests: number;
  createdAt: number;
  revokedAt?: number;
}

export interface KeyStore {
  readonly path: string;
  /** Makes a key; its secret is returned here and never again. */
  create(name: string, limits: ApiKeyLimits): { record: ApiKeyRecord; secret: string };
  /** The key whose secret this is, revoked or not; undefined for an unknown secret. */
  find(secret: string): ApiKeyRecord | undefined;
  list(): ApiKeyRecord[];
  /** Revokes a key by id; false when there is none. */
  revoke(id: string): boolean;
  /** Adds a finished request's tokens to the key's spending. */
  charge(id: string, tokens: number): void;
  close(): void;
}

/** Secrets start with this, so a leaked one is recognisable (and greppable) as infermesh's. */
export const KEY_PREFIX = 'im-';

const MIGRATIONS: readonly string[] = [
  `CREATE TABLE api_keys (
     id                  TEXT PRIMARY KEY,
     name                TEXT NOT NULL,
     secret_sha256       TEXT NOT NULL UNIQUE,
     budget_tokens       INTEGER,
     requests_per_minute INTEGER,
     tokens_per_minute   INTEGER,
     spent_tokens        INTEGER NOT NULL DEFAULT 0,
     requests            INTEGER NOT NULL DEFAULT 0,
     created_at          INTEGER NOT NULL,
     revoked_at          INTEGER
   );`,
];

const hash = (secret: string) => createHash('sha256').update(secret).digest('hex');

type Row = Record<string, string | number | null>;

function record(row: Row): ApiKeyRecord {
  const optional = (v: string | number | null) => (v === null ? undefined : Number(v));
  return {
    id: String(row.id),
    name: String(row.name),
    budgetTokens: optional(row.budget_tokens),
    requestsPerMinute: optional(row.requests_per_minute),
    tokensPerMinute: optional(row.tokens_per_minute),
    spentTokens: Number(row.spent_tokens),
    requests: Number(row.requests),
    createdAt: Number(row.created_at),
    revokedAt: optional(row.revoked_at),
  };
}

export function openKeyStore(path: string, deps: { now?: () => number } = {}): KeyStore {
  const now = deps.now ?? Date.now;
  const { db } = openSqlite({ path, migrations: MIGRATIONS, what: 'the API keys', error: KeyStoreError });
  const q = {
    insert: db.prepare('INSERT INTO api_keys (id, name, secret_sha256, budget_tokens, requests_per_minute, tokens_per_minute, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)'),
    bySecret: db.prepare('SELECT * FROM api_keys WHERE secret_sha256 = ?'),
    byId: db.prepare('SELECT * FROM api_keys WHERE id = ?'),
    list: db.prepare('SELECT * FROM api_keys ORDER BY created_at, id'),
    revoke: db.prepare('UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL'),
    charge: db.prepare('UPDATE api_keys SET spent_tokens = spent_tokens + ?, requests = requests + 1 WHERE id = ?'),
  };
  return {
    path,
    create(name, limits) {
      const secret = `${KEY_PREFIX}${randomBytes(24).toString('base64url')}`;
      const id = `key_${randomBytes(4).toString('hex')}`;
      q.insert.run(id, name, hash(secret), limits.budgetTokens ?? null, limits.requestsPerMinute ?? null, limits.tokensPerMinute ?? null, now());
      return { record: record(q.byId.get(id) as Row), secret };
    },
    find(secret) {
      const row = q.bySecret.get(hash(secret)) as Row | undefined;
      return row && record(row);
    },
    list: () => (q.list.all() as Row[]).map(record),
    revoke: (id) => Number(q.revoke.run(now(), id).changes) > 0,
    charge(id, tokens) {
      q.charge.run(tokens, id);
    },
    close: () => db.close(),
  };
}
