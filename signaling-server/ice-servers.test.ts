import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { iceServersFor, iceUrlProblem, turnCredentials } from './ice-servers.ts';

describe('ICE servers for /api/info', () => {
  it('give TURN credentials as coturn’s use-auth-secret checks them: the expiry, base64 HMAC-SHA1 of it with the secret', () => {
    const { username, credential } = turnCredentials('north-wind', 1_800_000_000);
    expect(username).toBe('1800000000');
    // the same HMAC by another implementation: openssl
    const openssl = execFileSync('openssl', ['dgst', '-sha1', '-hmac', 'north-wind', '-binary'], { input: username });
    expect(credential).toBe(openssl.toString('base64'));
  });

  it('hand out STUN as given and TURN with credentials valid for the TTL, saying until when', () => {
    const now = 1_700_000_000_500;
    const { iceServers, validUntil } = iceServersFor({ stun: ['stun:stun.example.org:3478'], turn: ['turn:turn.example.org:3478?transport=udp', 'turns:turn.example.org:5349'], turnSecret: 's3cret', turnTtlS: 3600 }, now);
    expect(validUntil).toBe((1_700_000_000 + 3600) * 1000);
    expect(iceServers).toEqual([
      { urls: ['stun:stun.example.org:3478'] },
      { urls: ['turn:turn.example.org:3478?transport=udp', 'turns:turn.example.org:5349'], ...turnCredentials('s3cret', 1_700_000_000 + 3600) },
    ]);
    expect(iceServersFor({ stun: ['stun:a.example'], turn: [], turnTtlS: 3600 }, now)).toEqual({ iceServers: [{ urls: ['stun:a.example'] }] });
  });

  it('take only URLs of their scheme that name a host', () => {
    expect(iceUrlProblem('stun:stun.example.org:3478', ['stun', 'stuns'])).toBeUndefined();
    expect(iceUrlProblem('turn:[2001:db8::1]:3478?transport=tcp', ['turn', 'turns'])).toBeUndefined();
    expect(iceUrlProblem('turn:turn.example.org', ['stun', 'stuns'])).toMatch(/must be a stun: or stuns: URL/);
    expect(iceUrlProblem('stun.example.org:3478', ['stun', 'stuns'])).toMatch(/must be a stun: or stuns: URL/);
    expect(iceUrlProblem('turn:', ['turn', 'turns'])).toMatch(/must name a host \(and port\) after turn:/);
    expect(iceUrlProblem('turn:a b', ['turn', 'turns'])).toMatch(/must name a host/);
  });
});
