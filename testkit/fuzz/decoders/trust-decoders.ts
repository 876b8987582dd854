/**
 * The trust layer's decoders under fuzz: signed commitments (decoded, then their signature
 * checked), step records, fingerprints, hand-off seals (checked against a transcript) and
 * vouchers (POST /api/vouchers's body, then the signer recovered). The valid inputs are signed
 * for real with a fixed key, so the checks past the format run too; and an accepted seal,
 * commitment or voucher must be one that key signed, not a mutation that slipped through.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import fc from 'fast-check';
import { isAddressEqual } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { decodeSignedCommitment, encodeSignedCommitment, signCommitment, verifyCommitment } from '../../../shared/trust/commitment.ts';
import { decodeFingerprint, encodeFingerprint, fingerprintHidden } from '../../../shared/trust/fingerprint.ts';
import { sealTranscript, transcriptOf, transcriptSealed } from '../../../shared/trust/handoff.ts';
import { decodeStepRecord, encodeStepRecord, recordStep } from '../../../shared/trust/step-record.ts';
import { checkVoucher, signVoucher, voucherDomain } from '../../../shared/settle/voucher.ts';
import type { SignedVoucher } from '../../../shared/settle/voucher.ts';
import { parseVoucherBody } from '../../../signaling-server/settle/voucher-api.ts';
import type { DecoderSpec } from './decoder.ts';
import { decodeJsonText, mutatedBytes, mutatedJsonText } from './mutations.ts';

const describeBytes = (bytes: Uint8Array) => `bytes(${bytes.byteLength}) ${Buffer.from(bytes.subarray(0, 24)).toString('hex')}${bytes.byteLength > 24 ? '…' : ''}`;
const same = (a: Uint8Array, b: Uint8Array) => a.byteLength === b.byteLength && a.every((x, i) => x === b[i]);

const fingerprintBytes = fc
  .record({ rows: fc.integer({ min: 1, max: 3 }), width: fc.integer({ min: 16, max: 64 }) })
  .chain(({ rows, width }) => fc.float32Array({ noDefaultInfinity: true, noNaN: true, minLength: rows * width, maxLength: rows * width }).map((data) => encodeFingerprint(fingerprintHidden(data, rows, width))));

export async function trustDecoders(): Promise<DecoderSpec<never>[]> {
  const key = await generateKeyPairFromSeed('Ed25519', sha256(new TextEncoder().encode('decoder fuzz')));
  const peerId = peerIdFromPrivateKey(key).toString();
  const stranger = peerIdFromPrivateKey(await generateKeyPairFromSeed('Ed25519', sha256(new TextEncoder().encode('stranger')))).toString();

  // A few real step records and a commitment over them, signed by `key`.
  const records = await Promise.all(
    [0, 1, 2].map((step) => recordStep(Float32Array.from({ length: 32 }, (_, i) => Math.sin(step + i)), Float32Array.from({ length: 32 }, (_, i) => Math.cos(step * i)), { step, position: step, rows: 1 })),
  );
  const transcript = await transcriptOf(records.map((r) => ({ requestId: 'fuzz-request', step: r.step, position: r.position, rows: 1, tensorSha256: r.inputSha256 })));
  const seal = await sealTranscript(transcript, key);
  const signed = await signCommitment(records, { packageId: 'p'.repeat(64), requestId: 'fuzz-request', upstream: stranger, upstreamRoot: transcript.root, upstreamSeal: seal, layers: { start: 0, end: 2 }, createdAt: 1_700_000_000_000 }, key);
  const commitmentBytes = encodeSignedCommitment(signed);

  const account = privateKeyToAccount(`0x${'42'.repeat(32)}`);
  const domain = voucherDomain({ chainId: 31337, verifyingContract: `0x${'5f'.repeat(20)}` });
  const vouchers = await Promise.all([1n, 1_000n, 10n ** 18n].map((cumulativeAmount) => signVoucher(account, domain, { cumulativeAmount })));
  const voucherBodies = vouchers.map((v) => ({ voucher: { client: v.client, cumulativeAmount: v.cumulativeAmount.toString(), signature: v.signature }, requestIds: ['4b0f4a6e-7f1e-4c3e-9d2a-5f0e8c1b2a3d'] }));

  const specs: DecoderSpec<any, any>[] = [
    {
      name: 'signed commitment',
      from: 'a COMMIT trust message: a stage commits to a request it served (then its signature is checked)',
      input: mutatedBytes(fc.constant(commitmentBytes)),
      async decode(bytes: Uint8Array) {
        const decoded = decodeSignedCommitment(bytes);
        await verifyCommitment(decoded);
        return decoded;
      },
      accepted: (c: Awaited<ReturnType<typeof decodeSignedCommitment>>) => (same(encodeSignedCommitment(c), commitmentBytes) ? undefined : 'a commitment the key never signed passed its signature check'),
      describe: describeBytes,
    },
    {
      name: 'step record',
      from: 'a REVEAL trust message: the records a stage reveals for the challenged steps',
      input: mutatedBytes(fc.constantFrom(...records.map(encodeStepRecord))),
      decode: decodeStepRecord,
      describe: describeBytes,
    },
    {
      name: 'fingerprint',
      from: "a step record: the top-k positions and values of a stage's output rows",
      input: mutatedBytes(fingerprintBytes),
      decode: decodeFingerprint,
      accepted: (fp: ReturnType<typeof decodeFingerprint>) => (fp.indices.every((i) => i < fp.width) ? undefined : 'an index outside the width'),
      describe: describeBytes,
    },
    {
      name: 'hand-off seal',
      from: 'a SEAL stage message and a commitment: the upstream\'s signature over the transcript of what it sent, and who it claims to be',
      input: fc.record({ seal: mutatedBytes(fc.constant(seal)), sender: fc.oneof(fc.constant(peerId), fc.constant(stranger), fc.string({ maxLength: 60 }), fc.constant(peerId.slice(0, -1)), fc.constant(`${peerId}x`)) }),
      decode: ({ seal: s, sender }: { seal: Uint8Array; sender: string }) => transcriptSealed(transcript, s, sender),
      refusedAs: (ok: boolean) => (ok ? undefined : 'not sealed (false)'),
      accepted: (_ok: boolean, { seal: s, sender }: { seal: Uint8Array; sender: string }) => (sender === peerId && same(s, seal) ? undefined : 'a seal the key never made was taken as its seal'),
      describe: ({ seal: s, sender }: { seal: Uint8Array; sender: string }) => `sender ${JSON.stringify(sender.slice(0, 60))}, seal ${describeBytes(s)}`,
    },
    {
      name: 'voucher',
      from: "POST /api/vouchers: an SDK client's signed voucher (JSON body), then its signature checked",
      input: mutatedJsonText(fc.constantFrom(...voucherBodies)),
      decode: (text: string) => decodeJsonText(text, (body) => checkVoucher(domain, undefined, parseVoucherBody(body).voucher)),
      accepted: (v: string | SignedVoucher) =>
        typeof v === 'string' || vouchers.some((g) => g.cumulativeAmount === v.cumulativeAmount && isAddressEqual(g.client, v.client)) ? undefined : `a voucher of ${v.cumulativeAmount} wei for ${v.client}, who never signed it, was taken`,
      describe: (t: string) => (t.length > 200 ? `${t.slice(0, 200)}…(${t.length} chars)` : t),
    },
  ];
  return specs as DecoderSpec<never>[];
}
