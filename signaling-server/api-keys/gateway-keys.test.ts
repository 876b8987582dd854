import { describe, expect, it } from 'vitest';
import { openKeyStore } from './key-store.ts';
import { createGatewayKeys } from './gateway-keys.ts';

const bearer = (secret: string) => ({ authorization: `Bearer ${secret}` });

function setup(required = true) {
  let now = 1_000_000;
  const keys = openKeyStore(':memory:', { now: () => now });
  const gate = createGatewayKeys({ required }, { keys, now: () => now });
  return { keys, gate, tick: (ms: number) => (now += ms) };
}

describe('the gateway’s API keys', () => {
  it('refuse a call without a key where keys are required, and let it in where they are not', () => {
    expect(() => setup(true).gate.admit({})).toThrow(expect.objectContaining({ name: 'ApiKeyError', status: 401, code: 'missing_api_key', headers: { 'WWW-Authenticate': 'Bearer realm="infermesh"' } }));
    expect(setup(false).gate.admit({}).key).toBeUndefined();
  });

  it('where keys are required, refuse an unknown, malformed or revoked one with a 401 naming why', () => {
    const { keys, gate } = setup(true);
    expect(() => gate.admit(bearer('im-not-a-key'))).toThrow(expect.objectContaining({ status: 401, code: 'invalid_api_key', message: expect.stringMatching(/not one of this grid's/) }));
    expect(() => gate.admit({ authorization: 'Basic abc' })).toThrow(expect.objectContaining({ status: 401, message: expect.stringMatching(/must be "Bearer <key>"/) }));
    const { record, secret } = keys.create('ci', {});
    expect(gate.admit(bearer(secret)).key?.id).toBe(record.id);
    expect(keys.revoke(record.id)).toBe(true);
    expect(() => gate.admit(bearer(secret))).toThrow(expect.objectContaining({ status: 401, message: `API key ${record.id} was revoked` }));
  });

  it('on an open gateway, meter a key of this grid and take any other as no key (official clients always send one)', () => {
    const { keys, gate } = setup(false);
    expect(gate.admit(bearer('none')).key).toBeUndefined();
    const { record, secret } = keys.create('metered', { budgetTokens: 1 });
    const admitted = gate.admit(bearer(secret));
    expect(admitted.key?.id).toBe(record.id);
    admitted.charge(1);
    expect(() => gate.admit(bearer(secret))).toThrow(expect.objectContaining({ status: 429, code: 'insufficient_quota' }));
  });

  it('store only a hash of the secret, which starts im-', () => {
    const { keys } = setup();
    const { secret } = keys.create('a', {});
    expect(secret).toMatch(/^im-[\w-]{32}$/);
    expect(JSON.stringify(keys.list())).not.toContain(secret);
  });

  it('charge each request’s tokens, and refuse a key past its budget with 429 insufficient_quota', () => {
    const { keys, gate } = setup();
    const { record, secret } = keys.create('a', { budgetTokens: 50 });
    gate.admit(bearer(secret)).charge(30);
    const second = gate.admit(bearer(secret));
    second.charge(25);
    second.charge(25); // charged once
    expect(keys.find(secret)).toMatchObject({ spentTokens: 55, requests: 2 });
    expect(() => gate.admit(bearer(secret))).toThrow(expect.objectContaining({ name: 'KeyBudgetError', status: 429, type: 'insufficient_quota', code: 'insufficient_quota', message: `API key ${record.id} has spent its budget of 50 tokens (55 used); ask the operator for more` }));
  });

  it('hold a key to its requests and tokens per minute, with Retry-After until the window frees up', () => {
    const { keys, gate, tick } = setup();
    const { secret } = keys.create('a', { requestsPerMinute: 2 });
    gate.admit(bearer(secret));
    tick(10_000);
    gate.admit(bearer(secret));
    expect(() => gate.admit(bearer(secret))).toThrow(expect.objectContaining({ name: 'KeyRateError', status: 429, code: 'rate_limit_exceeded', headers: { 'Retry-After': '50' } }));
    tick(50_001);
    expect(gate.admit(bearer(secret)).key).toBeDefined();

    const tokens = keys.create('b', { tokensPerMinute: 1000 }).secret;
    gate.admit(bearer(tokens)).charge(1000);
    tick(5_000);
    expect(() => gate.admit(bearer(tokens))).toThrow(expect.objectContaining({ status: 429, message: expect.stringMatching(/1000 tokens per minute/), headers: { 'Retry-After': '55' } }));
    tick(55_001);
    expect(gate.admit(bearer(tokens)).key).toBeDefined();
  });
});
