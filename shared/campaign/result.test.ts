import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { describe, expect, it } from 'vitest';
import { rejection } from '../../testkit/rejection.ts';
import { signCampaignResult, verifyCampaignResult } from './result.ts';
import type { CampaignResult } from './result.ts';

async function tab() {
  const key = await generateKeyPair('Ed25519');
  const result: CampaignResult = {
    campaignId: 'cmp_0123456789abcdef',
    peerId: peerIdFromPrivateKey(key).toString(),
    deviceSignature: 'dev-1',
    provider: 'wasm',
    adapter: 'wasm, 2 threads',
    workload: 'decode-64',
    repetition: 0,
    layers: { start: 0, end: 2 },
    promptMs: 12.5,
    decodeMs: 640,
    tokensPerSecond: 100,
    msPerLayer: 1.25,
    fingerprint: 'ab12',
    finishedAt: 1_800_000_000_000,
  };
  return { key, result };
}

describe('a signed campaign result', () => {
  it("verifies with its tab's peer id, and not once a figure is changed", async () => {
    const { key, result } = await tab();
    const signed = await signCampaignResult(result, key);
    expect(await verifyCampaignResult(JSON.parse(JSON.stringify(signed)))).toEqual(signed);
    const faster = { ...signed, result: { ...signed.result, tokensPerSecond: 1000 } };
    expect((await rejection(verifyCampaignResult(faster))).name).toBe('CampaignResultSignatureError');
  });

  it("is refused when another key signed it in the tab's name", async () => {
    const { result } = await tab();
    const other = await tab();
    const forged = await signCampaignResult(result, other.key);
    expect((await rejection(verifyCampaignResult(forged))).name).toBe('CampaignResultSignatureError');
  });

  it.each([
    ['no body', null],
    ['a figure that is not finite', { tokensPerSecond: 'fast' }],
    ['an unknown provider', { provider: 'cuda' }],
    ['an unknown field', { extra: 1 }],
  ])('refuses %s by name', async (_what, change) => {
    const { key, result } = await tab();
    const signed = await signCampaignResult(result, key);
    const body = change === null ? null : { ...signed, result: { ...signed.result, ...change } };
    expect((await rejection(verifyCampaignResult(body))).name).toBe('CampaignResultFormatError');
  });
});
