import { describe, expect, it } from 'vitest';
import type { Checkpoint } from './checkpoint.ts';
import { compilePackage } from './compiler.ts';
import { MANIFEST_FILE, parseManifest, sha256Hex } from './manifest.ts';
import { createMemorySink } from './memory-sink.ts';
import { createSyntheticCheckpoint } from './synthetic/checkpoint.ts';
import { rejection } from '../../testkit/rejection.ts';

const bytes = (...values: number[]) => Uint8Array.from(values);

describe('memory sink', () => {
  it('holds a compiled package whose files match the manifest sizes and piece hashes', async () => {
    const sink = createMemorySink();
    const manifest = await compilePackage(createSyntheticCheckpoint('tiny', 3), { dtype: 'q4' }, { sink });

    const stored = await parseManifest(new TextDecoder().decode(sink.read(MANIFEST_FILE)), MANIFEST_FILE);
    expect(stored.id).toBe(manifest.id);
    expect([...sink.files().keys()].sort()).toEqual([MANIFEST_FILE, ...manifest.files.map((f) => f.path)].sort());
    for (const file of manifest.files) {
      const data = sink.read(file.path);
      expect(data.byteLength).toBe(file.size);
      const piece = data.subarray(0, manifest.pieceSize);
      expect(await sha256Hex(piece)).toBe(file.pieces[0]);
    }
  });

  it('shows nothing before commit', async () => {
    const sink = createMemorySink();
    const file = await sink.create('a.bin');
    await file.write(bytes(1, 2, 3));
    await file.close();
    expect(sink.files().size).toBe(0);
    expect(() => sink.read('a.bin')).toThrow(/not committed/);
  });

  it('concatenates writes and keeps them even when the caller reuses its buffer', async () => {
    const sink = createMemorySink();
    const file = await sink.create('a.bin');
    const buffer = bytes(1, 2);
    await file.write(buffer);
    buffer.set([9, 9]);
    await file.write(bytes(3));
    await file.close();
    await sink.commit();
    expect([...sink.read('a.bin')]).toEqual([1, 2, 3]);
  });

  it('leaves nothing when a compile fails part way', async () => {
    const sink = createMemorySink();
    const good = createSyntheticCheckpoint('tiny', 3);
    const failing: Checkpoint = {
      source: good.source,
      config: good.config,
      tokenizer: good.tokenizer,
      tensors: () => good.tensors(),
      async read(name) {
        if (name.startsWith('layers.1.')) throw new Error('disk went away');
        return good.read(name);
      },
    };
    const err = await rejection(compilePackage(failing, { dtype: 'f32' }, { sink }));
    expect(err.message).toBe('disk went away');
    expect(sink.files().size).toBe(0);
    expect((await rejection(sink.create('late.bin'))).name).toBe('PackageError');
  });

  it('refuses to commit while a file is still open, and a path created twice', async () => {
    const sink = createMemorySink();
    await sink.create('open.bin');
    expect((await rejection(sink.create('open.bin'))).name).toBe('PackageError');
    expect((await rejection(sink.commit())).shortMessage).toMatch(/still open: open\.bin/);
  });

  it('names the missing file in the error', async () => {
    const sink = createMemorySink('pkg');
    await sink.commit();
    expect(() => sink.read('block-0.onnx')).toThrow('pkg/block-0.onnx: no such file in the package');
  });
});
