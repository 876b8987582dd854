import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { describe, expect, it } from 'vitest';
import { rejection } from '../../testkit/rejection.ts';
import { signCampaignResult } from './result.ts';
import { MAX_REASON_CHARS, reasonText, signTabReport, verifyTabReport } from './tab-report.ts';
import type { CampaignTabReport } from './tab-report.ts';

async function tab() {
  const key = await generateKeyPair('Ed25519');
  const report: CampaignTabReport = {
    campaignId: 'cmp_0123456789abcdef',
    peerId: peerIdFromPrivateKey(key).toString(),
    deviceSignature: 'dev-1',
    adapter: 'google swiftshader',
    tabProvider: 'webgpu',
    event: 'skipped',
    provider: 'wasm',
    workload: '',
    planned: 0,
    reason: 'a tab measures the provider it serves on',
    at: 1_800_000_000_000,
  };
  return { key, report };
}

describe("a tab's signed campaign report", () => {
  it('verifies with its peer id, and not once its reason is changed', async () => {
    const { key, report } = await tab();
    const signed = await signTabReport(report, key);
    expect(await verifyTabReport(JSON.parse(JSON.stringify(signed)))).toEqual(signed);
    expect((await rejection(verifyTabReport({ ...signed, report: { ...report, reason: 'no reason' } }))).name).toBe('CampaignResultSignatureError');
  });

  it("never verifies a result's signature as a report's: the domains differ", async () => {
    const { key, report } = await tab();
    const result = await signCampaignResult({ campaignId: report.campaignId, peerId: report.peerId, deviceSignature: 'dev-1', provider: 'wasm', adapter: 'a', workload: 'w', repetition: 0, layers: { start: 0, end: 1 }, promptMs: 1, decodeMs: 1, tokensPerSecond: 1, msPerLayer: 1, fingerprint: '', finishedAt: 0 }, key);
    expect((await rejection(verifyTabReport({ report, signature: result.signature }))).name).toBe('CampaignResultSignatureError');
  });

  it.each([
    ['an unknown event', { event: 'cheated' }],
    ['an unknown provider', { provider: 'cuda' }],
    ['a reason longer than a report carries', { reason: 'x'.repeat(MAX_REASON_CHARS + 1) }],
  ])('refuses %s by name', async (_what, change) => {
    const { key, report } = await tab();
    const signed = await signTabReport(report, key);
    expect((await rejection(verifyTabReport({ ...signed, report: { ...report, ...change } }))).name).toBe('CampaignResultFormatError');
  });

  it('cuts a long reason to what a report carries', () => {
    expect(reasonText('x'.repeat(2 * MAX_REASON_CHARS))).toHaveLength(MAX_REASON_CHARS);
    expect(reasonText('short')).toBe('short');
  });
});
