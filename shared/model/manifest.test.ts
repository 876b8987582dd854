import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { canonicalJson, createPieceHasher, MANIFEST_FILE, manifestId, PACKAGE_FORMAT, parseManifest, PIECE_SIZE } from './manifest.ts';
import type { Manifest } from './manifest.ts';
import { createSyntheticCheckpoint } from './synthetic/checkpoint.ts';
import { compileTo, removeTempDirs } from '../../testkit/model-fixtures.ts';
import { rejection } from '../../testkit/rejection.ts';

afterAll(removeTempDirs);

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const SHA256_OF_NOTHING = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/** Deterministic bytes that differ from piece to piece. */
function bytesOf(length: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 131 + (i >> 8) * 7) & 0xff);
}


describe('canonicalJson', () => {
  it('sorts keys at every depth, inside arrays too, with no whitespace', () => {
    const value = { b: 1, a: { z: [{ y: 1, x: 2 }, 3], c: { e: null, d: 'q' } }, A: true };
    expect(canonicalJson(value)).toBe('{"A":true,"a":{"c":{"d":"q","e":null},"z":[{"x":2,"y":1},3]},"b":1}');
  });

  it('gives the same text whatever order the keys were inserted in', () => {
    expect(canonicalJson({ x: { b: 2, a: 1 }, w: [1, 2] })).toBe(canonicalJson({ w: [1, 2], x: { a: 1, b: 2 } }));
  });

  it('drops properties whose value is undefined, at every depth', () => {
    expect(canonicalJson({ a: undefined, b: { c: undefined, d: 1 }, e: [{ f: undefined }] })).toBe('{"b":{"d":1},"e":[{}]}');
    expect(canonicalJson({ a: undefined })).toBe(canonicalJson({}));
  });

  it('escapes keys and strings as JSON does', () => {
    expect(canonicalJson({ 'k"\n': 'v\u2028"' })).toBe(`{${JSON.stringify('k"\n')}:${JSON.stringify('v\u2028"')}}`);
    expect(JSON.parse(canonicalJson({ 'k"\n': 'v"' }))).toEqual({ 'k"\n': 'v"' });
  });
});

describe('createPieceHasher', () => {
  const pieceSize = 7;

  it('hashes each pieceSize slice, ceil(size / pieceSize) pieces in all', async () => {
    for (const size of [1, 6, 7, 8, 49, 50]) {
      const bytes = bytesOf(size);
      const hasher = createPieceHasher(pieceSize);
      hasher.push(bytes);
      const file = await hasher.finish('f.bin');
      const expected = Array.from({ length: Math.ceil(size / pieceSize) }, (_, i) => sha256(bytes.subarray(i * pieceSize, (i + 1) * pieceSize)));
      expect(file).toEqual({ path: 'f.bin', size, pieces: expected });
    }
  });

  it('gives the same hashes whether the bytes come at once or in odd-size chunks', async () => {
    const bytes = bytesOf(103);
    const whole = createPieceHasher(pieceSize);
    whole.push(bytes);
    const chunked = createPieceHasher(pieceSize);
    const sizes = [1, 3, 0, 5, 13, 2, 7, 11, 17, 44];
    let at = 0;
    for (const n of sizes) {
      chunked.push(bytes.subarray(at, at + n));
      at += n;
    }
    expect(at).toBe(bytes.byteLength);
    const a = await whole.finish('x');
    const b = await chunked.finish('x');
    expect(b).toEqual(a);
    expect(a.pieces).toHaveLength(Math.ceil(103 / pieceSize));
  });

  it('is not disturbed when the caller reuses its buffer after push', async () => {
    const bytes = bytesOf(20);
    const reused = new Uint8Array(4);
    const hasher = createPieceHasher(pieceSize);
    for (let at = 0; at < 20; at += 4) {
      reused.set(bytes.subarray(at, at + 4));
      hasher.push(reused);
      reused.fill(0xee);
    }
    const file = await hasher.finish('r');
    expect(file.pieces).toEqual([sha256(bytes.subarray(0, 7)), sha256(bytes.subarray(7, 14)), sha256(bytes.subarray(14, 20))]);
  });

  it('gives an empty file one piece, the hash of nothing', async () => {
    const hasher = createPieceHasher(pieceSize);
    hasher.push(new Uint8Array(0));
    expect(await hasher.finish('empty')).toEqual({ path: 'empty', size: 0, pieces: [SHA256_OF_NOTHING] });
    expect(await createPieceHasher().finish('e')).toEqual({ path: 'e', size: 0, pieces: [SHA256_OF_NOTHING] });
  });

  it('uses 1 MiB pieces by default', async () => {
    const bytes = bytesOf(PIECE_SIZE + 3);
    const hasher = createPieceHasher();
    hasher.push(bytes);
    const file = await hasher.finish('big');
    expect(file.size).toBe(PIECE_SIZE + 3);
    expect(file.pieces).toEqual([sha256(bytes.subarray(0, PIECE_SIZE)), sha256(bytes.subarray(PIECE_SIZE))]);
  });
});

describe('package manifests', () => {
  let dir: string;
  let manifest: Manifest;
  let text: string;

  beforeAll(async () => {
    ({ dir, manifest } = await compileTo(createSyntheticCheckpoint('tiny', 1), 'f32'));
    text = await readFile(join(dir, MANIFEST_FILE), 'utf8');
  });

  it('parseManifest accepts a compiled package manifest as written', async () => {
    const parsed = await parseManifest(text, 'manifest.json');
    expect(parsed).toEqual(manifest);
    expect(parsed.format).toBe(PACKAGE_FORMAT);
    expect(parsed.id).toMatch(/^[0-9a-f]{64}$/);
    expect(parsed.id).toBe(await manifestId(parsed));
  });

  it('lists every file with its size and the SHA-256 of each piece', async () => {
    for (const file of manifest.files) {
      const bytes = new Uint8Array(await readFile(join(dir, file.path)));
      expect(file.size).toBe(bytes.byteLength);
      expect(file.pieces).toEqual(
        Array.from({ length: Math.max(1, Math.ceil(bytes.byteLength / PIECE_SIZE)) }, (_, i) => sha256(bytes.subarray(i * PIECE_SIZE, (i + 1) * PIECE_SIZE))),
      );
    }
  });

  it('parseManifest rejects text that is not JSON', async () => {
    const err = await rejection(parseManifest('{"format": ', 'pkg/manifest.json'));
    expect(err.name).toBe('PackageError');
    expect(err.message).toBe('pkg/manifest.json: manifest is not valid JSON');
    expect(err.cause).toBeInstanceOf(SyntaxError);
  });

  it('parseManifest rejects another package format', async () => {
    const other = JSON.stringify({ ...JSON.parse(text), format: 'infermesh-package/1' });
    const err = await rejection(parseManifest(other, 'm.json'));
    expect(err.name).toBe('PackageError');
    expect(err.message).toBe('m.json: unsupported package format "infermesh-package/1" (expected infermesh-package/2); compile the checkpoint again');
    const missing = JSON.parse(text);
    delete missing.format;
    expect((await rejection(parseManifest(JSON.stringify(missing), 'm.json'))).message).toMatch(/unsupported package format undefined/);
  });

  it('parseManifest refuses by field a manifest whose id is its content\'s but whose content is no manifest', async () => {
    const { id: _, ...rest } = JSON.parse(text) as Manifest;
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...rest, files: [{ path: 'x', size: -1, pieces: [] }] }, /files\.0\.size/],
      [{ ...rest, files: [{ path: 'x', size: 3 << 20, pieces: ['a'.repeat(64)] }] }, /files: x has 1 piece hashes for 3145728 bytes/],
      [{ ...rest, shards: [{ kind: 'block', layer: 'one', graph: 'g', data: 'd' }] }, /shards\.0\.layer/],
      [{ ...rest, config: { ...rest.config, nLayers: 0 } }, /config\.nLayers/],
    ];
    for (const [content, field] of cases) {
      const doc = { ...content, id: await manifestId(content as Omit<Manifest, 'id'>) };
      const err = await rejection(parseManifest(JSON.stringify(doc), 'm.json'));
      expect(err.name).toBe('PackageError');
      expect(err.message).toMatch(field);
    }
    // An unknown field nested 50,000 deep: no stack overflow, a refusal.
    const deep = `${JSON.stringify({ ...rest, id: 'f'.repeat(64) }).slice(0, -1)},"junk":${'['.repeat(50_000)}${']'.repeat(50_000)}}`;
    expect(await rejection(parseManifest(deep, 'm.json'))).toMatchObject({ name: 'PackageError', message: expect.stringMatching(/cannot be hashed/) });
  });

  it('parseManifest rejects a manifest whose content was edited but whose id was kept', async () => {
    const edited = JSON.parse(text) as Manifest;
    edited.files[1].pieces[0] = '0'.repeat(64);
    const err = await rejection(parseManifest(JSON.stringify(edited), 'm.json'));
    expect(err.name).toBe('PackageError');
    expect(err.message).toContain(`manifest id ${manifest.id} does not match its content`);
    expect(err.message).toContain(await manifestId(edited));
  });

  it('parseManifest rejects an edited config or a renamed package with the old id', async () => {
    const config = JSON.parse(text) as Manifest;
    config.config.maxSeqLen *= 2;
    expect((await rejection(parseManifest(JSON.stringify(config), 'm.json'))).message).toContain(manifest.id);
    const renamed = JSON.parse(text) as Manifest;
    renamed.name = 'something else';
    expect((await rejection(parseManifest(JSON.stringify(renamed), 'm.json'))).name).toBe('PackageError');
  });

  it('parseManifest accepts the same manifest with its keys reordered and reformatted', async () => {
    const parsed = JSON.parse(text) as Record<string, unknown>;
    const reordered = Object.fromEntries(Object.entries(parsed).reverse());
    expect((await parseManifest(JSON.stringify(reordered), 'm.json')).id).toBe(manifest.id);
  });

  it('compiles the same seed to the same id and identical file hashes', async () => {
    const again = await compileTo(createSyntheticCheckpoint('tiny', 1), 'f32');
    expect(again.manifest.id).toBe(manifest.id);
    expect(again.manifest.files).toEqual(manifest.files);
    for (const file of manifest.files) {
      expect(await readFile(join(again.dir, file.path))).toEqual(await readFile(join(dir, file.path)));
    }
  });

  it('compiles another seed to another id', async () => {
    const other = await compileTo(createSyntheticCheckpoint('tiny', 2), 'f32');
    expect(other.manifest.id).not.toBe(manifest.id);
    const hashes = (m: Manifest, path: string) => m.files.find((f) => f.path === path)!.pieces;
    expect(hashes(other.manifest, 'block-0.data')).not.toEqual(hashes(manifest, 'block-0.data'));
    // The graphs reference tensors by name and offset, so they are the same for any seed.
    expect(hashes(other.manifest, 'block-0.onnx')).toEqual(hashes(manifest, 'block-0.onnx'));
  });
});
