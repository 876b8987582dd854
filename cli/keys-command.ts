/**
 * `infermesh keys create|list|revoke`: the OpenAI gateway's API keys, in keys.sqlite in the
 * server's data folder (`--data`, as `serve` takes it; the same INFERMESH_DATA default). Works
 * while the server runs: it reads a key on every request, so a new or revoked key holds at once.
 * `create` prints the secret alone on stdout (shown this once: only its hash is kept).
 */
import { join, resolve } from 'node:path';
import { UsageError } from '../shared/errors.ts';
import { defaultDataDir } from '../signaling-server/config.ts';
import { openKeyStore } from '../signaling-server/api-keys/key-store.ts';
import type { ApiKeyRecord, KeyStore } from '../signaling-server/api-keys/key-store.ts';

export interface KeysOptions {
  data?: string;
}

function withStore<T>(opts: KeysOptions, run: (keys: KeyStore) => T): T {
  const dataDir = opts.data ? resolve(opts.data) : process.env.INFERMESH_DATA ? resolve(process.env.INFERMESH_DATA) : defaultDataDir(process.env);
  const keys = openKeyStore(join(dataDir, 'keys.sqlite'));
  try {
    return run(keys);
  } finally {
    keys.close();
  }
}

const limit = (n: number | undefined, unit: string) => (n === undefined ? 'no limit' : `${n} ${unit}`);

export function describeKey(k: ApiKeyRecord): string {
  const state = k.revokedAt !== undefined ? `revoked ${new Date(k.revokedAt).toISOString()}` : 'active';
  return `${k.id}  ${JSON.stringify(k.name)}  ${state}; spent ${k.spentTokens} of ${limit(k.budgetTokens, 'tokens')} in ${k.requests} requests; ${limit(k.requestsPerMinute, 'requests/min')}, ${limit(k.tokensPerMinute, 'tokens/min')}`;
}

export function keysCreate(opts: KeysOptions & { name?: string; budget?: number; rate?: number; tokenRate?: number }): void {
  withStore(opts, (keys) => {
    const { record, secret } = keys.create(opts.name ?? 'unnamed', { budgetTokens: opts.budget, requestsPerMinute: opts.rate, tokensPerMinute: opts.tokenRate });
    process.stderr.write(`made ${describeKey(record)}\nits secret (shown this once; callers send Authorization: Bearer <secret>):\n`);
    process.stdout.write(`${secret}\n`);
  });
}

export function keysList(opts: KeysOptions & { json?: boolean }): void {
  withStore(opts, (keys) => {
    const all = keys.list();
    if (opts.json) process.stdout.write(`${JSON.stringify(all)}\n`);
    else process.stdout.write(all.length === 0 ? 'no API keys yet (infermesh keys create)\n' : `${all.map(describeKey).join('\n')}\n`);
  });
}

export function keysRevoke(id: string, opts: KeysOptions): void {
  withStore(opts, (keys) => {
    const known = keys.list().find((k) => k.id === id);
    if (!known) throw new UsageError(`no such key (infermesh keys list shows them)`, { source: id });
    if (!keys.revoke(id)) throw new UsageError('was revoked already', { source: id });
    process.stderr.write(`revoked ${id}: calls with it are refused from now on\n`);
  });
}
