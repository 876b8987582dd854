import { describe, expect, it } from 'vitest';
import { checkCampaignSpec } from '../../shared/campaign/spec.ts';
import { campaignSkips } from './campaign-runner.ts';

const spec = checkCampaignSpec({
  name: 'both',
  models: [{ package: 'stories260K' }],
  workloads: [
    { name: 'whole', promptTokens: 4, decodeTokens: 4 },
    { name: 'first-two', promptTokens: 4, decodeTokens: 4, layers: { start: 0, end: 2 } },
  ],
  providers: ['webgpu', 'wasm'],
  repetitions: 1,
  target: { devices: 1 },
  endsAt: '2030-01-01T00:00:00Z',
});
const tab = { layers: { start: 0, end: 5 }, model: { id: 'pkg-1', name: 'stories260K' }, providerReason: 'the page was opened with ?ep=wasm', provider: 'wasm' };

describe("what a tab leaves out of a campaign, and why", () => {
  it('skips the providers it does not compute on and the workloads of layers it does not serve', () => {
    expect(campaignSkips(spec, tab)).toEqual([
      { provider: 'webgpu', workload: '', reason: 'this tab computes on wasm: the page was opened with ?ep=wasm' },
      { provider: 'wasm', workload: 'first-two', reason: 'layers 0-2; this tab serves 0-5' },
    ]);
    expect(campaignSkips(spec, { ...tab, layers: { start: 0, end: 2 } })).toHaveLength(1);
  });

  it('skips every workload of a campaign of another model, or of providers it has none of', () => {
    expect(campaignSkips(spec, { ...tab, model: { id: 'pkg-2', name: 'llama' } })).toEqual([{ provider: '', workload: '', reason: 'this tab serves llama, the campaign measures stories260K' }]);
    expect(campaignSkips({ ...spec, providers: ['webgpu'] }, tab).map((s) => [s.provider, s.workload])).toEqual([['webgpu', '']]);
  });
});
