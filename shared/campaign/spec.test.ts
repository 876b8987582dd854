import { describe, expect, it } from 'vitest';
import { checkCampaignSpec, parseCampaignSpec } from './spec.ts';
import type { CampaignSpecError } from './spec.ts';

const GOOD = {
  name: 'decode across tabs',
  models: [{ package: 'stories260K', dtypes: ['f32'] }],
  workloads: [
    { name: 'prefill-32', promptTokens: 32, decodeTokens: 1 },
    { name: 'decode-64', promptTokens: 8, decodeTokens: 64, layers: { start: 0, end: 2 } },
  ],
  providers: ['webgpu', 'wasm'],
  repetitions: 3,
  target: { devices: 4 },
  startsAt: '2027-01-01T00:00:00Z',
  endsAt: '2027-01-02T00:00:00Z',
};

const refusal = (spec: unknown) => {
  try {
    checkCampaignSpec(spec);
  } catch (err) {
    return err as CampaignSpecError;
  }
  throw new Error('the spec was accepted');
};

describe('a campaign spec', () => {
  it('is read from JSON or YAML, with defaults filled in (warm-up 1, batch 1, every layer)', () => {
    const fromJson = parseCampaignSpec(JSON.stringify(GOOD));
    const yaml = `name: decode across tabs
models: [{ package: stories260K, dtypes: [f32] }]
workloads:
  - { name: prefill-32, promptTokens: 32, decodeTokens: 1 }
  - { name: decode-64, promptTokens: 8, decodeTokens: 64, layers: { start: 0, end: 2 } }
providers: [webgpu, wasm]
repetitions: 3
target: { devices: 4 }
startsAt: "2027-01-01T00:00:00Z"
endsAt: "2027-01-02T00:00:00Z"
`;
    expect(parseCampaignSpec(yaml)).toEqual(fromJson);
    expect(fromJson.warmup).toBe(1);
    expect(fromJson.workloads[0]).toMatchObject({ batch: 1, layers: 'all' });
  });

  it.each([
    ['negative tokens', { workloads: [{ name: 'w', promptTokens: -4, decodeTokens: 8 }] }, 'workloads[0].promptTokens'],
    ['an unknown execution provider', { providers: ['wasm', 'cuda'] }, 'providers[1]'],
    ['an end before its start', { endsAt: '2026-12-31T00:00:00Z' }, 'endsAt'],
    ['an end that is not a time', { endsAt: 'tomorrow' }, 'endsAt'],
    ['a misspelt field', { repetition: 3 }, 'repetition'],
    ['an unknown field in a workload', { workloads: [{ name: 'w', promptTokens: 1, decodeTokens: 1, threads: 2 }] }, 'workloads[0].threads'],
    ['a batch the engine cannot run', { workloads: [{ name: 'w', promptTokens: 1, decodeTokens: 1, batch: 8 }] }, 'workloads[0].batch'],
    ['a layer range that ends where it starts', { workloads: [{ name: 'w', promptTokens: 1, decodeTokens: 1, layers: { start: 2, end: 2 } }] }, 'workloads[0].layers.end'],
    ['two workloads of one name', { workloads: [GOOD.workloads[0], GOOD.workloads[0]] }, 'workloads[1].name'],
    ['no target', { target: {} }, 'target'],
    ['no models', { models: [] }, 'models'],
    ['an unknown dtype', { models: [{ package: 'x', dtypes: ['int3'] }] }, 'models[0].dtypes[0]'],
    ['zero repetitions', { repetitions: 0 }, 'repetitions'],
  ])('refuses %s, naming the field', (_what, change, field) => {
    const err = refusal({ ...GOOD, ...change });
    expect(err.name).toBe('CampaignSpecError');
    expect(err.field).toBe(field);
    expect(err.message).toContain(`campaign spec: ${field}: `);
  });

  it('refuses a file that is not JSON or YAML, or not an object', () => {
    expect(() => parseCampaignSpec('name: [unclosed', 'spec.yaml')).toThrow(/spec\.yaml: campaign spec: not JSON or YAML/);
    expect(() => parseCampaignSpec('[1, 2]')).toThrow(/must be an object of fields/);
  });

  it('refuses a file past 64 KiB before parsing it (YAML can take seconds on large inputs)', () => {
    const huge = JSON.stringify({ ...GOOD, name: 'x'.repeat(70_000) });
    expect(() => parseCampaignSpec(huge)).toThrow(/campaign spec: is 70\d{3} bytes; a spec is at most 65536/);
  });
});
