/**
 * The campaigns' decoders under fuzz: a spec file (JSON or YAML text, as `infermesh campaign
 * create` reads it and POST /api/campaigns takes it), a tab's signed result (POST
 * /api/campaigns/<id>/results) and its signed report (POST /api/campaigns/<id>/reports). The
 * valid results and reports are signed for real with a fixed key, and an accepted one must be one
 * that key signed, not a mutation that slipped through.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import fc from 'fast-check';
import { parseCampaignSpec } from '../../../shared/campaign/spec.ts';
import { campaignResultBytes, signCampaignResult, verifyCampaignResult } from '../../../shared/campaign/result.ts';
import type { CampaignResult, SignedCampaignResult } from '../../../shared/campaign/result.ts';
import { signTabReport, tabReportBytes, verifyTabReport } from '../../../shared/campaign/tab-report.ts';
import type { CampaignTabReport, SignedTabReport } from '../../../shared/campaign/tab-report.ts';
import type { DecoderSpec } from './decoder.ts';
import { decodeJsonText, mutatedJsonText } from './mutations.ts';

const describeText = (t: string) => (t.length > 200 ? `${t.slice(0, 200)}…(${t.length} chars)` : t);

const SPECS = [
  {
    name: 'decode across tabs',
    models: [{ package: 'stories260K', dtypes: ['f32'] }],
    workloads: [{ name: 'decode-64', promptTokens: 8, decodeTokens: 64, layers: { start: 0, end: 2 } }],
    providers: ['webgpu', 'wasm'],
    repetitions: 3,
    warmup: 1,
    target: { devices: 4, runs: 100 },
    startsAt: '2027-01-01T00:00:00Z',
    endsAt: '2027-01-02T00:00:00+02:00',
  },
  { name: 'p', models: [{ package: 'x' }], workloads: [{ name: 'w', promptTokens: 1, decodeTokens: 0 }], providers: ['wasm'], repetitions: 1, target: { runs: 1 }, endsAt: '2030-01-01T00:00:00Z' },
];

/** YAML forms of the same documents, and YAML's own hazards: aliases, tags, deep nesting. */
const YAML_TEXTS = [
  'name: y\nmodels: [{package: x}]\nworkloads: [{name: w, promptTokens: 2, decodeTokens: 2}]\nproviders: [wasm]\nrepetitions: 1\ntarget: {devices: 1}\nendsAt: "2030-01-01T00:00:00Z"\n',
  'a: &a [1, 2]\nb: [*a, *a, *a]\n',
  `a: &a ["x"]\n${Array.from({ length: 12 }, (_, i) => `l${i}: &l${i} [${`*${i ? `l${i - 1}` : 'a'}, `.repeat(9)}*${i ? `l${i - 1}` : 'a'}]`).join('\n')}\n`,
  'name: !!binary aGVsbG8=\n',
  '!!js/function "function(){}"\n',
  `${'- '.repeat(5000)}x\n`,
  '---\nname: a\n---\nname: b\n',
];

export async function campaignDecoders(): Promise<DecoderSpec<never>[]> {
  const key = await generateKeyPairFromSeed('Ed25519', sha256(new TextEncoder().encode('campaign fuzz')));
  const peerId = peerIdFromPrivateKey(key).toString();
  const results: CampaignResult[] = [0, 1, 2].map((repetition) => ({
    campaignId: 'cmp_0123456789abcdef',
    peerId,
    deviceSignature: 'dev-1',
    provider: repetition === 1 ? 'webgpu' : 'wasm',
    adapter: 'google swiftshader',
    workload: 'decode-64',
    repetition,
    layers: { start: 0, end: 2 },
    promptMs: 12.5 + repetition,
    decodeMs: 640,
    tokensPerSecond: 100,
    msPerLayer: 1.25,
    fingerprint: 'ab12',
    finishedAt: 1_800_000_000_000,
  }));
  const signed = await Promise.all(results.map((r) => signCampaignResult(r, key)));
  const signedBytes = signed.map((s) => Buffer.from(campaignResultBytes(s.result)).toString('hex'));
  const reports: CampaignTabReport[] = (['joined', 'skipped', 'failed'] as const).map((event, i) => ({
    campaignId: 'cmp_0123456789abcdef',
    peerId,
    deviceSignature: 'dev-1',
    adapter: 'google swiftshader',
    tabProvider: 'webgpu',
    event,
    provider: event === 'joined' ? '' : 'wasm',
    workload: event === 'failed' ? 'decode-64' : '',
    planned: event === 'joined' ? 6 : 0,
    reason: event === 'joined' ? '' : `reason ${i}`,
    at: 1_800_000_000_000 + i,
  }));
  const signedReports = await Promise.all(reports.map((r) => signTabReport(r, key)));
  const signedReportBytes = signedReports.map((s) => Buffer.from(tabReportBytes(s.report)).toString('hex'));

  const specs: DecoderSpec<any, any>[] = [
    {
      name: 'campaign spec',
      from: 'a spec file (`infermesh campaign create`), and POST /api/campaigns\'s body',
      input: fc.oneof({ weight: 8, arbitrary: mutatedJsonText(fc.constantFrom(...SPECS)) }, { weight: 1, arbitrary: fc.constantFrom(...YAML_TEXTS) }),
      decode: (text: string) => parseCampaignSpec(text),
      describe: describeText,
    },
    {
      name: 'campaign result',
      from: "POST /api/campaigns/<id>/results: a tab's signed result (JSON body), then its signature checked",
      input: mutatedJsonText(fc.constantFrom(...signed)),
      decode: (text: string) => decodeJsonText(text, verifyCampaignResult),
      accepted: (r: string | SignedCampaignResult) =>
        typeof r === 'string' || signedBytes.includes(Buffer.from(campaignResultBytes(r.result)).toString('hex')) ? undefined : `a result the key never signed was taken: ${JSON.stringify(r.result).slice(0, 160)}`,
      describe: describeText,
    },
    {
      name: 'campaign tab report',
      from: "POST /api/campaigns/<id>/reports: a tab's signed report (JSON body), then its signature checked",
      input: mutatedJsonText(fc.constantFrom(...signedReports)),
      decode: (text: string) => decodeJsonText(text, verifyTabReport),
      accepted: (r: string | SignedTabReport) =>
        typeof r === 'string' || signedReportBytes.includes(Buffer.from(tabReportBytes(r.report)).toString('hex')) ? undefined : `a report the key never signed was taken: ${JSON.stringify(r.report).slice(0, 160)}`,
      describe: describeText,
    },
  ];
  return specs as DecoderSpec<never>[];
}
