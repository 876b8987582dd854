/**
 * What a donor tab tells a campaign besides its results, signed with its peer key as a result
 * is (peer-signature.ts), so the dashboard can say which tabs joined, how far each got, what each
 * could not run and why, and which left or went quiet:
 *   joined    the tab starts the campaign: `planned` is how many runs it will post
 *   skipped   a provider or workload it will not run (another provider than its engine's, other
 *             layers than it serves, another model), with why
 *   failed    a workload that threw while it ran, with the error
 *   finished  it went through every run it planned (or the campaign stopped or ended first: its reason says)
 *   left      its visitor closed it or opted out before it finished
 */
import type { PrivateKey } from '@libp2p/interface';
import { z } from 'zod';
import { CampaignResultFormatError, CampaignResultSignatureError } from './result.ts';
import { signatureText, signBytes, signedBytes, verifyPeerSigned } from './peer-signature.ts';
import { EXECUTION_PROVIDERS } from './spec.ts';
import type { ExecutionProviderName } from './spec.ts';

export const TAB_EVENTS = ['joined', 'skipped', 'failed', 'finished', 'left'] as const;
export type TabEvent = (typeof TAB_EVENTS)[number];

/** A report's reason at most: a sentence and an error message, not a log. */
export const MAX_REASON_CHARS = 500;

const DOMAIN = 'infermesh/campaign-tab-report/1\n';

export interface CampaignTabReport {
  campaignId: string;
  peerId: string;
  deviceSignature: string;
  adapter: string;
  /** the provider the tab computes on */
  tabProvider: ExecutionProviderName;
  event: TabEvent;
  /** skipped or failed: the provider concerned; '' for the others */
  provider: ExecutionProviderName | '';
  /** skipped or failed: the workload concerned; '' for all of them */
  workload: string;
  /** joined: the runs the tab will post; else 0 */
  planned: number;
  reason: string;
  /** when the tab sent it (ms since the epoch); the server keeps its own receipt time too */
  at: number;
}

export interface SignedTabReport {
  report: CampaignTabReport;
  signature: string;
}

const reportShape = z.strictObject({
  campaignId: z.string().min(1).max(64),
  peerId: z.string().min(1).max(128),
  deviceSignature: z.string().min(1).max(128),
  adapter: z.string().max(256),
  tabProvider: z.enum(EXECUTION_PROVIDERS),
  event: z.enum(TAB_EVENTS),
  provider: z.union([z.enum(EXECUTION_PROVIDERS), z.literal('')]),
  workload: z.string().max(64),
  planned: z.number().int().min(0).max(1_000_000),
  reason: z.string().max(MAX_REASON_CHARS),
  at: z.number().int().min(0),
});
const signedShape = z.strictObject({ report: reportShape, signature: signatureText });

export function tabReportBytes(r: CampaignTabReport): Uint8Array {
  return signedBytes(DOMAIN, [r.campaignId, r.peerId, r.deviceSignature, r.adapter, r.tabProvider, r.event, r.provider, r.workload, r.planned, r.reason, r.at]);
}

export async function signTabReport(report: CampaignTabReport, key: PrivateKey): Promise<SignedTabReport> {
  return { report, signature: await signBytes(tabReportBytes(report), key) };
}

/** A report's JSON body checked and its signature verified against its peer id's key. */
export function verifyTabReport(body: unknown): Promise<SignedTabReport> {
  return verifyPeerSigned(body, signedShape, {
    what: 'campaign tab report',
    over: 'this report',
    signer: (s) => ({ peerId: s.report.peerId, bytes: tabReportBytes(s.report) }),
    Format: CampaignResultFormatError,
    Forged: CampaignResultSignatureError,
  });
}

/** A reason cut to what a report carries. */
export const reasonText = (text: string) => (text.length > MAX_REASON_CHARS ? `${text.slice(0, MAX_REASON_CHARS - 1)}…` : text);
