/**
 * One run of a campaign workload on one device, as the tab that ran it reports it: signed with
 * the tab's libp2p peer key (Ed25519), so the server can tell who measured what and a stranger
 * cannot submit in a tab's name. The signature covers the result's canonical bytes
 * (peer-signature.ts), so a result cannot be altered after signing and a signature made for
 * anything else never verifies as one.
 */
import type { PrivateKey } from '@libp2p/interface';
import { InfermeshError } from '../errors.ts';
import { signatureText, signBytes, signedBytes, verifyPeerSigned } from './peer-signature.ts';
import { EXECUTION_PROVIDERS } from './spec.ts';
import type { ExecutionProviderName } from './spec.ts';
import { z } from 'zod';

/** A submitted result whose fields are not a result's (400). */
export class CampaignResultFormatError extends InfermeshError {
  override name = 'CampaignResultFormatError';
}

/** A result whose signature is not its peer's over these fields (403). */
export class CampaignResultSignatureError extends InfermeshError {
  override name = 'CampaignResultSignatureError';
}

const DOMAIN = 'infermesh/campaign-result/1\n';

export interface CampaignResult {
  campaignId: string;
  /** the tab's peer id: its key signs the result */
  peerId: string;
  /** the device handshake's signature (the engine's hash of adapter and limits) */
  deviceSignature: string;
  provider: ExecutionProviderName;
  /** the adapter's description, as the handshake reported it */
  adapter: string;
  workload: string;
  /** 0-based, after the warm-up runs */
  repetition: number;
  /** the layers the run covered, [start, end): the tab's loaded ones */
  layers: { start: number; end: number };
  /** prefill of the workload's prompt tokens */
  promptMs: number;
  /** all of its decode steps */
  decodeMs: number;
  /** decode steps per second */
  tokensPerSecond: number;
  /** one decode step's time divided by the layers it ran */
  msPerLayer: number;
  /** the output fingerprint of the run's first decode step (hex), checked against the reference */
  fingerprint: string;
  /** when the tab finished the run (ms since the epoch) */
  finishedAt: number;
}

export interface SignedCampaignResult {
  result: CampaignResult;
  /** base64 of the Ed25519 signature over campaignResultBytes(result) */
  signature: string;
}

const finite = z.number().refine(Number.isFinite, 'must be a finite number').pipe(z.number().min(0));
const resultShape = z.strictObject({
  campaignId: z.string().min(1).max(64),
  peerId: z.string().min(1).max(128),
  deviceSignature: z.string().min(1).max(128),
  provider: z.enum(EXECUTION_PROVIDERS),
  adapter: z.string().max(256),
  workload: z.string().min(1).max(64),
  repetition: z.number().int().min(0).max(1_000_000),
  layers: z.strictObject({ start: z.number().int().min(0).max(1 << 16), end: z.number().int().min(1).max(1 << 16) }).refine((l) => l.start < l.end, 'start < end'),
  promptMs: finite,
  decodeMs: finite,
  tokensPerSecond: finite,
  msPerLayer: finite,
  fingerprint: z.string().regex(/^[0-9a-f]{0,2048}$/, 'hex, 1 KiB at most'),
  finishedAt: z.number().int().min(0),
});
const signedShape = z.strictObject({ result: resultShape, signature: signatureText });

/** The bytes a result's signature covers: the domain tag, then its fields in the interface's order. */
export function campaignResultBytes(r: CampaignResult): Uint8Array {
  const ordered = [r.campaignId, r.peerId, r.deviceSignature, r.provider, r.adapter, r.workload, r.repetition, r.layers.start, r.layers.end, r.promptMs, r.decodeMs, r.tokensPerSecond, r.msPerLayer, r.fingerprint, r.finishedAt];
  return signedBytes(DOMAIN, ordered);
}

export async function signCampaignResult(result: CampaignResult, key: PrivateKey): Promise<SignedCampaignResult> {
  return { result, signature: await signBytes(campaignResultBytes(result), key) };
}

/** A submission's JSON body checked and its signature verified against its peer id's key. */
export function verifyCampaignResult(body: unknown): Promise<SignedCampaignResult> {
  return verifyPeerSigned(body, signedShape, {
    what: 'campaign result',
    over: 'these figures',
    signer: (s) => ({ peerId: s.result.peerId, bytes: campaignResultBytes(s.result) }),
    Format: CampaignResultFormatError,
    Forged: CampaignResultSignatureError,
  });
}
