/**
 * A Merkle tree over a request's step records (RFC 6962 / RFC 9162 §2.1): a stage signs only
 * the root (commitment.ts) and later reveals a challenged record with its inclusion proof, so a
 * commitment stays 32 bytes whatever the number of steps and a reveal costs log2(steps) hashes.
 * Leaves and nodes are hashed with different prefixes (0x00, 0x01), so an inner node can never
 * be passed off as a leaf.
 */
import { UsageError } from '../errors.ts';

async function sha256(...parts: Uint8Array[]): Promise<Uint8Array> {
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.byteLength;
  }
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
}

const LEAF = Uint8Array.of(0);
const NODE = Uint8Array.of(1);

export const leafHash = (leaf: Uint8Array) => sha256(LEAF, leaf);
const nodeHash = (left: Uint8Array, right: Uint8Array) => sha256(NODE, left, right);

/** The largest power of two smaller than n (n ≥ 2): where RFC 6962 splits a tree. */
function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

async function subtreeRoot(hashes: Uint8Array[], from: number, to: number): Promise<Uint8Array> {
  if (to - from === 1) return hashes[from];
  const k = split(to - from);
  return nodeHash(await subtreeRoot(hashes, from, from + k), await subtreeRoot(hashes, from + k, to));
}

/** The tree head of the leaves; of no leaves, SHA-256 of nothing (RFC 6962). */
export async function merkleRoot(leaves: Uint8Array[]): Promise<Uint8Array> {
  if (leaves.length === 0) return sha256();
  return subtreeRoot(await Promise.all(leaves.map(leafHash)), 0, leaves.length);
}

/** The subtrees whose roots make leaf `index`'s audit path, from the leaf up (RFC 6962 §2.1.1). */
function siblings(index: number, leafCount: number): [number, number][] {
  const ranges: [number, number][] = [];
  let from = 0;
  let to = leafCount;
  while (to - from > 1) {
    const k = split(to - from);
    if (index < from + k) {
      ranges.push([from + k, to]);
      to = from + k;
    } else {
      ranges.push([from, from + k]);
      from += k;
    }
  }
  return ranges.reverse();
}

/** The audit path of leaf `index`: sibling subtree roots from the leaf up to the root. */
export async function merkleProof(leaves: Uint8Array[], index: number): Promise<Uint8Array[]> {
  if (!Number.isInteger(index) || index < 0 || index >= leaves.length) throw new UsageError(`leaf ${index} is outside 0..${leaves.length - 1}`);
  const hashes = await Promise.all(leaves.map(leafHash));
  const path: Uint8Array[] = [];
  for (const [a, b] of siblings(index, leaves.length)) path.push(await subtreeRoot(hashes, a, b));
  return path;
}

/** Every leaf's audit path (merkleProof for each index), each subtree hashed once: O(n) hashes, not O(n²). */
export async function merkleProofs(leaves: Uint8Array[]): Promise<Uint8Array[][]> {
  const hashes = await Promise.all(leaves.map(leafHash));
  const memo = new Map<string, Promise<Uint8Array>>();
  const root = (from: number, to: number): Promise<Uint8Array> => {
    const key = `${from}:${to}`;
    let r = memo.get(key);
    if (!r) {
      const k = split(to - from);
      r = to - from === 1 ? Promise.resolve(hashes[from]) : Promise.all([root(from, from + k), root(from + k, to)]).then(([a, b]) => nodeHash(a, b));
      memo.set(key, r);
    }
    return r;
  };
  return Promise.all(leaves.map((_, index) => Promise.all(siblings(index, leaves.length).map(([a, b]) => root(a, b)))));
}

const equal = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((x, i) => x === b[i]);

/** RFC 9162 §2.1.3.2: true when `leafBytes` is leaf `index` of a tree of `leafCount` leaves with this root. */
export async function verifyMerkleProof(leafBytes: Uint8Array, index: number, leafCount: number, proof: Uint8Array[], root: Uint8Array): Promise<boolean> {
  if (!Number.isInteger(index) || !Number.isInteger(leafCount) || index < 0 || index >= leafCount) return false;
  let fn = index;
  let sn = leafCount - 1;
  let r = await leafHash(leafBytes);
  for (const p of proof) {
    if (sn === 0 || p.length !== 32) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equal(r, root);
}
