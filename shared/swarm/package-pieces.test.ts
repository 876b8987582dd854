import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { compileTo, removeTempDirs } from '../../testkit/model-fixtures.ts';
import type { Manifest } from '../model/manifest.ts';
import { createSyntheticCheckpointFromConfig } from '../model/synthetic/checkpoint.ts';
import { syntheticConfig } from '../model/synthetic/presets.ts';
import { rejection } from '../../testkit/rejection.ts';
import { assembleFiles, filesForLayers, locatePiece, piecesForLayers, piecesOfFiles } from './package-pieces.ts';
import { createMemoryPieceStore } from './piece-store.ts';

/** Four layers whose f32 weights take four 1 MiB pieces per block (the tiny preset's fit in one). */
const SWARM_CONFIG = { ...syntheticConfig('tiny'), dim: 256, hiddenDim: 1024, headDim: 64, nLayers: 4 };

let manifest: Manifest;
const files: Record<string, Uint8Array> = {};

beforeAll(async () => {
  const compiled = await compileTo(createSyntheticCheckpointFromConfig(SWARM_CONFIG, 5, 'synthetic:swarm'), 'f32');
  manifest = compiled.manifest;
  for (const f of manifest.files) files[f.path] = new Uint8Array(await readFile(join(compiled.dir, f.path)));
});
afterAll(removeTempDirs);

const range = (file: string, n: number) => Array.from({ length: n }, (_, i) => `${file}#${i}`);

describe('pieces of a layer range', () => {
  it('are the block graphs and weight data of those layers, in package order', () => {
    expect(piecesForLayers(manifest, { start: 1, end: 3 })).toEqual([...range('block-1.data', 4), 'block-1.onnx#0', ...range('block-2.data', 4), 'block-2.onnx#0']);
  });

  it('of the whole model cover every block file and nothing else', () => {
    expect(filesForLayers(manifest, { start: 0, end: 4 })).toEqual([0, 1, 2, 3].flatMap((i) => [`block-${i}.onnx`, `block-${i}.data`]));
    expect(piecesForLayers(manifest, { start: 0, end: 4 })).toHaveLength(4 * 5);
  });

  it('refuses a range outside the package with a UsageError', () => {
    for (const layers of [{ start: 3, end: 5 }, { start: -1, end: 2 }, { start: 2, end: 2 }, { start: 0.5, end: 2 }]) {
      expect(() => piecesForLayers(manifest, layers)).toThrow(expect.objectContaining({ name: 'UsageError', message: expect.stringContaining("package's 4 layers") }));
    }
  });
});

describe('pieces of files', () => {
  it('follow package order whatever order the paths are given in', () => {
    expect(piecesOfFiles(manifest, ['head.data', 'embed.onnx', 'embed.data'])).toEqual(['embed.data#0', 'embed.onnx#0', 'head.data#0']);
  });

  it('refuse a path the package does not have with a PackageError naming it', () => {
    expect(() => piecesOfFiles(manifest, ['block-9.data'])).toThrow(expect.objectContaining({ name: 'PackageError', message: expect.stringContaining('no file block-9.data') }));
  });
});

describe('locatePiece', () => {
  it('gives offset, length and hash, the last piece of a file short', () => {
    const file = manifest.files.find((f) => f.path === 'block-0.data')!;
    expect(locatePiece(manifest, 'block-0.data#1')).toMatchObject({ index: 1, offset: 1 << 20, length: 1 << 20, sha256: file.pieces[1] });
    expect(locatePiece(manifest, 'block-0.data#3')).toMatchObject({ offset: 3 << 20, length: file.size - (3 << 20) });
  });

  it('refuses keys that name no piece', () => {
    for (const key of ['block-0.data#4', 'block-0.data#-1', 'block-0.data#01', 'block-0.data', 'nope#0', '#0']) {
      expect(() => locatePiece(manifest, key), key).toThrow(expect.objectContaining({ name: 'PackageError' }));
    }
  });
});

describe('assembleFiles', () => {
  it('rebuilds files byte for byte from stored pieces', async () => {
    const store = createMemoryPieceStore();
    const paths = ['block-2.data', 'block-2.onnx', 'tokenizer.bin'];
    for (const key of piecesOfFiles(manifest, paths)) {
      const at = locatePiece(manifest, key);
      await store.put(manifest.id, key, files[at.file.path].subarray(at.offset, at.offset + at.length));
    }
    const assembled = await assembleFiles(manifest, store, paths);
    expect(Object.keys(assembled).sort()).toEqual([...paths].sort());
    for (const path of paths) expect(Buffer.from(assembled[path]).equals(Buffer.from(files[path])), path).toBe(true);
  });

  it('names the missing piece when one is not stored', async () => {
    const store = createMemoryPieceStore();
    for (const key of ['block-1.data#0', 'block-1.data#1', 'block-1.data#3']) {
      const at = locatePiece(manifest, key);
      await store.put(manifest.id, key, files[at.file.path].subarray(at.offset, at.offset + at.length));
    }
    const err = await rejection(assembleFiles(manifest, store, ['block-1.data']));
    expect(err.name).toBe('PackageError');
    expect(err.message).toContain('piece block-1.data#2 is not in the piece store');
  });
});

describe('memory piece store', () => {
  it('lists, returns and replaces pieces per package', async () => {
    const store = createMemoryPieceStore();
    await store.put('a', 'x#0', new Uint8Array([1, 2]));
    await store.put('a', 'x#0', new Uint8Array([3]));
    await store.put('b', 'y#0', new Uint8Array([4]));
    expect(await store.keys('a')).toEqual(new Set(['x#0']));
    expect(await store.get('a', 'x#0')).toEqual(new Uint8Array([3]));
    expect(await store.get('a', 'y#0')).toBeUndefined();
    expect(await store.keys('c')).toEqual(new Set());
  });

  it('refuses a piece past its byte limit with a StorageQuotaError that says how many bytes', async () => {
    const store = createMemoryPieceStore({ maxBytes: 10 });
    await store.put('a', 'x#0', new Uint8Array(6));
    const err = await rejection(store.put('a', 'x#1', new Uint8Array(6)));
    expect(err.name).toBe('StorageQuotaError');
    expect(err.message).toContain('x#1 (6 bytes)');
    expect(await store.keys('a')).toEqual(new Set(['x#0']));
  });
});
