import { describe, expect, it } from 'vitest';
import { leafHash, merkleProof, merkleProofs, merkleRoot, verifyMerkleProof } from './merkle.ts';

const leaves = (n: number) => Array.from({ length: n }, (_, i) => new TextEncoder().encode(`step ${i}`));
const sha256 = async (...parts: number[][]) => new Uint8Array(await crypto.subtle.digest('SHA-256', Uint8Array.from(parts.flat())));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('merkleRoot', () => {
  it('is RFC 6962: leaf = H(0x00‖d), node = H(0x01‖l‖r), split at the largest power of two', async () => {
    const d = leaves(3);
    const [a, b, c] = await Promise.all(d.map((x) => sha256([0], [...x])));
    const ab = await sha256([1], [...a], [...b]);
    expect(hex(await merkleRoot(d))).toBe(hex(await sha256([1], [...ab], [...c])));
    expect(hex(await merkleRoot(d.slice(0, 1)))).toBe(hex(a));
    expect(hex(await merkleRoot([]))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  it('changes when any leaf changes', async () => {
    const d = leaves(5);
    const tampered = [...d];
    tampered[3] = new TextEncoder().encode('step 3!');
    expect(hex(await merkleRoot(tampered))).not.toBe(hex(await merkleRoot(d)));
  });
});

describe('merkle proofs', () => {
  it.each([1, 2, 3, 5, 7, 8, 13])('prove every leaf of a tree of %i', async (n) => {
    const d = leaves(n);
    const root = await merkleRoot(d);
    for (let i = 0; i < n; i++) {
      const proof = await merkleProof(d, i);
      expect(proof.length).toBeLessThanOrEqual(Math.ceil(Math.log2(n)));
      expect(await verifyMerkleProof(d[i], i, n, proof, root)).toBe(true);
    }
  });

  it('fail for a tampered leaf', async () => {
    const d = leaves(7);
    expect(await verifyMerkleProof(new TextEncoder().encode('step 9'), 4, 7, await merkleProof(d, 4), await merkleRoot(d))).toBe(false);
  });

  it('fail at the wrong index or a tree size of another shape', async () => {
    const d = leaves(7);
    const root = await merkleRoot(d);
    expect(await verifyMerkleProof(d[4], 5, 7, await merkleProof(d, 4), root)).toBe(false);
    expect(await verifyMerkleProof(d[4], 7, 7, await merkleProof(d, 4), root)).toBe(false);
    // Leaf 6 is a lone right subtree in a tree of 7 but has a sibling in a tree of 8. (A size
    // with the same path shape verifies: the commitment signs stepCount, which pins the size.)
    expect(await verifyMerkleProof(d[6], 6, 8, await merkleProof(d, 6), root)).toBe(false);
  });

  it('fail with a sibling dropped or an inner node passed off as a leaf', async () => {
    const d = leaves(4);
    const root = await merkleRoot(d);
    const proof = await merkleProof(d, 1);
    expect(await verifyMerkleProof(d[1], 1, 4, proof.slice(0, 1), root)).toBe(false);
    // The left inner node H(0x01‖h0‖h1) with only the right subtree as a proof: the leaf prefix forbids it.
    const inner = Uint8Array.from([...(await leafHash(d[0])), ...(await leafHash(d[1]))]);
    expect(await verifyMerkleProof(inner, 0, 2, proof.slice(1), root)).toBe(false);
  });

  it('are the same computed all at once as one by one', async () => {
    for (const n of [1, 2, 5, 8, 13]) {
      const d = leaves(n);
      expect(await merkleProofs(d)).toEqual(await Promise.all(d.map((_, i) => merkleProof(d, i))));
    }
  });

  it('refuse to prove a leaf that is not there', async () => {
    await expect(merkleProof(leaves(3), 3)).rejects.toMatchObject({ name: 'UsageError' });
  });
});
