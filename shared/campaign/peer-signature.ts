/**
 * What a donor tab signs for a campaign (a run's result, a report of what it skipped or why it
 * failed): a domain tag and the fields in a fixed order, as JSON, signed with the tab's libp2p
 * peer key (Ed25519). The domain tag keeps a signature made for one kind of message from
 * verifying as another; the fixed order makes the bytes canonical.
 */
import type { PrivateKey } from '@libp2p/interface';
import { z } from 'zod';
import type { InfermeshError, InfermeshErrorOptions } from '../errors.ts';
import { peerPublicKey } from '../trust/peer-key.ts';

/** A base64 Ed25519 signature, as it travels in a JSON body. */
export const signatureText = z.string().regex(/^[A-Za-z0-9+/]{86}==$/, 'a base64 Ed25519 signature');

export const signedBytes = (domain: string, ordered: readonly unknown[]) => new TextEncoder().encode(domain + JSON.stringify(ordered));

/** base64 of the key's signature over the bytes. */
export async function signBytes(bytes: Uint8Array, key: PrivateKey): Promise<string> {
  return toBase64(new Uint8Array(await key.sign(bytes)));
}

type Refusal = new (message: string, options?: InfermeshErrorOptions) => InfermeshError;

/**
 * A JSON body checked against `shape` (the first problem refused as `Format`, naming its path),
 * then its signature verified as the signer's over the signed bytes (refused as `Forged`).
 * `what` opens each message ("campaign result"), `over` says what was signed ("these figures").
 */
export async function verifyPeerSigned<S extends { signature: string }>(
  body: unknown,
  shape: z.ZodType<S>,
  o: { what: string; over: string; signer: (signed: S) => { peerId: string; bytes: Uint8Array }; Format: Refusal; Forged: Refusal },
): Promise<S> {
  const parsed = shape.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new o.Format(`${o.what}: ${issue.path.join('.') || 'body'}: ${issue.message}`);
  }
  const { peerId, bytes } = o.signer(parsed.data);
  const ok = await peerPublicKey(peerId, o.Forged).verify(bytes, fromBase64(parsed.data.signature));
  if (!ok) throw new o.Forged(`${o.what}: the signature is not ${peerId}'s over ${o.over}`);
  return parsed.data;
}

const toBase64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes));
const fromBase64 = (text: string) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
