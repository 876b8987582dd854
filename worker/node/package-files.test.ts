import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cp, mkdir, open, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checkPackageFiles, readPackageManifest } from './package-files.ts';
import { compileTo, removeTempDirs, tempDir } from '../../testkit/model-fixtures.ts';
import { createSyntheticCheckpoint } from '../../shared/model/synthetic/checkpoint.ts';
import { blockShards, createPieceHasher, MANIFEST_FILE } from '../../shared/model/manifest.ts';
import type { Manifest } from '../../shared/model/manifest.ts';
import { rejection } from '../../testkit/rejection.ts';

afterAll(removeTempDirs);


describe('local packages', () => {
  let pristine: string;
  let manifest: Manifest;

  beforeAll(async () => {
    ({ dir: pristine, manifest } = await compileTo(createSyntheticCheckpoint('tiny', 3), 'f32'));
  });

  /** A copy of the compiled package that a test may damage. */
  async function copyOfPackage(): Promise<string> {
    const dir = join(await tempDir(), 'pkg');
    await cp(pristine, dir, { recursive: true });
    return dir;
  }

  const blockData = () => blockShards(manifest)[1].data;

  it('checkPackageFiles passes on a freshly compiled package, hashing every piece', async () => {
    await expect(checkPackageFiles(pristine, manifest, true)).resolves.toBeUndefined();
    await expect(checkPackageFiles(pristine, manifest, false)).resolves.toBeUndefined();
  });

  it('checkPackageFiles names the file and the piece when one byte in a block data file is flipped', async () => {
    const dir = await copyOfPackage();
    const path = join(dir, blockData());
    const file = manifest.files.find((f) => f.path === blockData())!;
    const handle = await open(path, 'r+');
    const byte = Buffer.alloc(1);
    const middle = Math.floor(file.size / 2);
    await handle.read(byte, 0, 1, middle);
    byte[0] ^= 0x01;
    await handle.write(byte, 0, 1, middle);
    await handle.close();
    expect((await readFile(path)).byteLength).toBe(file.size);

    const pieceIndex = Math.floor(middle / manifest.pieceSize);
    const err = await rejection(checkPackageFiles(dir, manifest, true));
    expect(err.name).toBe('PackageError');
    expect(err.source).toBe(path);
    expect(err.message).toBe(`${path}: piece ${pieceIndex} fails its SHA-256 check`);
    // Sizes alone cannot see a flipped byte.
    await expect(checkPackageFiles(dir, manifest, false)).resolves.toBeUndefined();
  });

  it('checkPackageFiles names the right piece when the damage is past the first piece', async () => {
    // Tiny files are one piece at 1 MiB; a manifest with 4 KiB pieces has several per block file.
    const pieceSize = 4096;
    const dir = await copyOfPackage();
    const path = join(dir, blockData());
    const bytes = new Uint8Array(await readFile(path));
    const hasher = createPieceHasher(pieceSize);
    hasher.push(bytes);
    const small: Manifest = { ...manifest, pieceSize, files: [await hasher.finish(blockData())] };
    expect(small.files[0].pieces.length).toBeGreaterThan(3);
    await expect(checkPackageFiles(dir, small, true)).resolves.toBeUndefined();

    bytes[3 * pieceSize + 17] ^= 0x80;
    await writeFile(path, bytes);
    const err = await rejection(checkPackageFiles(dir, small, true));
    expect(err.name).toBe('PackageError');
    expect(err.message).toBe(`${path}: piece 3 fails its SHA-256 check`);
  });

  it('checkPackageFiles without piece hashing still catches a truncated file by its size', async () => {
    const dir = await copyOfPackage();
    const path = join(dir, blockData());
    const file = manifest.files.find((f) => f.path === blockData())!;
    await truncate(path, file.size - 1);
    const err = await rejection(checkPackageFiles(dir, manifest, false));
    expect(err.name).toBe('PackageError');
    expect(err.source).toBe(path);
    expect(err.message).toBe(`${path}: size ${file.size - 1} does not match the manifest (${file.size})`);
  });

  it('checkPackageFiles without piece hashing still catches a missing file', async () => {
    const dir = await copyOfPackage();
    const path = join(dir, 'head.onnx');
    await rm(path);
    const err = await rejection(checkPackageFiles(dir, manifest, false));
    expect(err.name).toBe('PackageError');
    expect(err.message).toBe(`${path}: file listed in the manifest is missing`);
  });

  it('readPackageManifest reads and checks the manifest of a package folder', async () => {
    expect(await readPackageManifest(pristine)).toEqual(manifest);
  });

  it('readPackageManifest on a folder without manifest.json says it is not a model package', async () => {
    const dir = join(await tempDir(), 'empty');
    await mkdir(dir);
    const err = await rejection(readPackageManifest(dir));
    expect(err.name).toBe('PackageError');
    expect(err.shortMessage).toBe('not a model package (no manifest.json)');
    expect(err.message).toBe(`${dir}: not a model package (no manifest.json)`);
    const missingDir = await rejection(readPackageManifest(join(dir, 'nope')));
    expect(missingDir.message).toContain('not a model package');
  });

  it('readPackageManifest refuses a package whose manifest was edited', async () => {
    const dir = await copyOfPackage();
    const path = join(dir, MANIFEST_FILE);
    const m = JSON.parse(await readFile(path, 'utf8')) as Manifest;
    m.config.nLayers = 2;
    await writeFile(path, JSON.stringify(m));
    const err = await rejection(readPackageManifest(dir));
    expect(err.name).toBe('PackageError');
    expect(err.source).toBe(path);
    expect(err.message).toContain(`manifest id ${manifest.id} does not match its content`);
  });
});
