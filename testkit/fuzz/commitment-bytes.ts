/**
 * Signed commitments as bytes, written field by field without the checks of
 * shared/trust/commitment.ts's encoder, so a fuzz case can sign what that encoder refuses to
 * write: ids of 1,025 bytes, empty ids, an end layer before the start, a bad magic or version.
 * The layout is commitment.ts's (its top comment); the fuzz test checks that a valid
 * commitment comes out byte for byte as encodeCommitment writes it. Used by trust-run.ts.
 */

export interface CommitmentFields {
  packageId: string;
  requestId: string;
  peerId: string;
  upstream: string;
  layers: { start: number; end: number };
  stepCount: number;
  root: Uint8Array;
  upstreamRoot: Uint8Array;
  upstreamSeal: Uint8Array;
  createdAt: number;
  /** "IMCM" unless a case breaks it */
  magic?: number;
  version?: number;
}

const MAGIC = 0x4d43_4d49;
const VERSION = 2;
const utf8 = new TextEncoder();

/** u16 lengths and u32 numbers are written modulo their width: a case asks for the overflow. */
export function writeCommitment(f: CommitmentFields): Uint8Array {
  const ids = [f.packageId, f.requestId, f.peerId, f.upstream].map((s) => utf8.encode(s));
  const seal = f.upstreamSeal.subarray(0, 0xffff);
  const bytes = new Uint8Array(6 + ids.reduce((n, b) => n + 2 + Math.min(b.byteLength, 0xffff), 0) + 12 + 64 + 8 + 2 + seal.byteLength);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, (f.magic ?? MAGIC) >>> 0, true);
  view.setUint8(4, f.version ?? VERSION);
  let at = 6;
  for (const id of ids) {
    const n = Math.min(id.byteLength, 0xffff);
    view.setUint16(at, n, true);
    bytes.set(id.subarray(0, n), at + 2);
    at += 2 + n;
  }
  for (const n of [f.layers.start, f.layers.end, f.stepCount]) {
    view.setUint32(at, n >>> 0, true);
    at += 4;
  }
  bytes.set(f.root.subarray(0, 32), at);
  bytes.set(f.upstreamRoot.subarray(0, 32), at + 32);
  view.setBigUint64(at + 64, BigInt(Math.max(0, Math.floor(f.createdAt))) & 0xffff_ffff_ffff_ffffn, true);
  view.setUint16(at + 72, seal.byteLength, true);
  bytes.set(seal, at + 74);
  return bytes;
}

/** The signed commitment's envelope: commitment length u32, commitment, signature length u16, signature. */
export function writeSignedCommitment(body: Uint8Array, signature: Uint8Array): Uint8Array {
  const sig = signature.subarray(0, 0xffff);
  const bytes = new Uint8Array(4 + body.byteLength + 2 + sig.byteLength);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, body.byteLength, true);
  bytes.set(body, 4);
  view.setUint16(4 + body.byteLength, sig.byteLength, true);
  bytes.set(sig, 6 + body.byteLength);
  return bytes;
}
