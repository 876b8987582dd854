import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openFileSource } from '../../../worker/node/node-files.ts';
import { CheckpointFormatError } from '../../errors.ts';
import { bytesSource, type ByteSource } from '../byte-source.ts';
import { parseSafetensorsHeader, readSafetensorsTensor } from './safetensors.ts';
import { encodeSafetensors, encodeSafetensorsRaw } from '../../../testkit/safetensors-writer.ts';

const tmp = mkdtempSync(join(tmpdir(), 'infermesh-st-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Writes bytes to a temp file and opens it the way the CLI does. */
async function fileSource(name: string, bytes: Uint8Array): Promise<ByteSource> {
  const path = join(tmp, name);
  writeFileSync(path, bytes);
  return openFileSource(path);
}

/** Records every read, to prove tensor reads touch only the tensor's bytes. */
function countingSource(inner: ByteSource) {
  const reads: Array<[number, number]> = [];
  const source: ByteSource = { name: inner.name, size: inner.size, read: (o, l) => (reads.push([o, l]), inner.read(o, l)) };
  return { source, reads };
}

async function expectFormatError(bytes: Uint8Array, pattern: RegExp, name = 'bad.safetensors') {
  const source = await fileSource(name, bytes);
  try {
    const err = await parseSafetensorsHeader(source).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CheckpointFormatError);
    const e = err as CheckpointFormatError;
    expect(e.source).toBe(join(tmp, name));
    expect(e.message).toContain(join(tmp, name));
    expect(e.shortMessage).toMatch(pattern);
    expect(e.shortMessage).not.toContain('\n');
  } finally {
    await source.close?.();
  }
}

describe('safetensors round trip', () => {
  const values = [0, 1, -2.5, 0.1, 1e-5, -65504, 3.75, 1 / 3];

  it.each(['F32', 'F16', 'BF16'] as const)('writes and reads %s from a file', async (dtype) => {
    const bytes = encodeSafetensors(
      {
        a: { dtype, shape: [2, 4], data: values },
        b: { dtype, shape: [3], data: [7, 8, 9] },
        empty: { dtype, shape: [0, 4], data: [] },
      },
      { format: 'pt' },
    );
    const source = await fileSource(`rt-${dtype}.safetensors`, bytes);
    const header = await parseSafetensorsHeader(source);
    expect(header.metadata).toEqual({ format: 'pt' });
    expect([...header.tensors.keys()]).toEqual(['a', 'b', 'empty']);
    expect(header.tensors.get('a')).toMatchObject({ dtype, shape: [2, 4] });
    expect(header.dataStart % 8).toBe(0); // header padded to 8 bytes like the reference writer
    const a = await readSafetensorsTensor(source, header.tensors.get('a')!);
    const tol = dtype === 'F32' ? 1e-7 : dtype === 'F16' ? 1e-3 : 1e-2;
    a.forEach((v, i) => expect(Math.abs(v - values[i])).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(values[i]))));
    expect([...(await readSafetensorsTensor(source, header.tensors.get('b')!))]).toEqual([7, 8, 9]);
    expect((await readSafetensorsTensor(source, header.tensors.get('empty')!)).length).toBe(0);
    await source.close?.();
  });

  it('reads only the tensor byte range, in chunks, from unaligned memory', async () => {
    const data = Float32Array.from({ length: 37 }, (_, i) => i * 0.5 - 3);
    const bytes = encodeSafetensors({ pad: { dtype: 'BF16', shape: [1], data: [1] }, x: { shape: [37], data }, h: { dtype: 'F16', shape: [37], data } });
    // Shift by one byte so F32 data is not 4-aligned in memory.
    const shifted = new Uint8Array(bytes.byteLength + 1);
    shifted.set(bytes, 1);
    const { source, reads } = countingSource(bytesSource('mem.safetensors', shifted.subarray(1)));
    const header = await parseSafetensorsHeader(source);
    const headerReads = reads.length;
    const x = header.tensors.get('x')!;
    expect([...(await readSafetensorsTensor(source, x, 20))]).toEqual([...data]);
    const tensorReads = reads.slice(headerReads);
    expect(tensorReads.length).toBe(8); // 37 floats at 5 per 20-byte chunk
    expect(tensorReads[0][0]).toBe(x.begin);
    expect(tensorReads.reduce((n, [, l]) => n + l, 0)).toBe(x.end - x.begin);
    expect([...(await readSafetensorsTensor(source, header.tensors.get('h')!, 6))]).toEqual([...data]);
  });
});

describe('safetensors validation', () => {
  const good = () => encodeSafetensors({ w: { shape: [2, 2], data: [1, 2, 3, 4] } });
  const raw = (header: unknown, dataBytes: number) => encodeSafetensorsRaw(header, new Uint8Array(dataBytes));

  it('rejects a file too short for the length prefix', async () => {
    await expectFormatError(new Uint8Array(5), /too short/);
  });

  it('rejects a header length beyond the file size', async () => {
    const bytes = good();
    new DataView(bytes.buffer).setUint32(0, 1_000_000, true);
    await expectFormatError(bytes, /header length 1000000 runs past the end of the file/);
    const huge = good();
    new DataView(huge.buffer).setUint32(4, 0xffff, true); // > 2^32: must not be read as a small number
    await expectFormatError(huge, /runs past the end of the file/);
  });

  it('rejects a header that is not JSON', async () => {
    const bytes = good();
    bytes[8] = 0x7b;
    bytes[9] = 0x7b; // "{{"
    await expectFormatError(bytes, /header is not valid JSON/);
    await expectFormatError(raw([1, 2], 0), /header is not a JSON object/);
  });

  it('rejects unknown dtypes, naming the tensor', async () => {
    await expectFormatError(raw({ w: { dtype: 'Q4_K', shape: [2], data_offsets: [0, 2] } }, 2), /tensor "w" has unknown dtype "Q4_K"/);
    await expectFormatError(raw({ w: { dtype: 'constructor', shape: [2], data_offsets: [0, 2] } }, 2), /unknown dtype "constructor"/);
  });

  it('parses known but unreadable dtypes and refuses to read them', async () => {
    const source = await fileSource('i64.safetensors', encodeSafetensors({ ids: { dtype: 'I64', shape: [2], bytes: new Uint8Array(16) } }));
    const header = await parseSafetensorsHeader(source);
    await expect(readSafetensorsTensor(source, header.tensors.get('ids')!)).rejects.toThrow(
      /i64\.safetensors: tensor "ids" has dtype I64; infermesh reads only F32, F16, BF16 weights/,
    );
    await source.close?.();
  });

  it('rejects data_offsets that disagree with shape and dtype', async () => {
    await expectFormatError(
      raw({ w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 12] } }, 16),
      /tensor "w" data_offsets \[0, 12\] span 12 bytes but F32 shape \[2, 2\] needs 16/,
    );
    await expectFormatError(raw({ w: { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }, 16), /invalid data_offsets \[8,0\]/);
    await expectFormatError(raw({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 0] } }, 16), /invalid shape \[-1\]/);
  });

  it('rejects a header that lies about offsets past the end of the file', async () => {
    await expectFormatError(
      raw({ w: { dtype: 'F32', shape: [4], data_offsets: [8, 24] } }, 16),
      /^tensor "w" data_offsets \[8, 24\] run past the end of the data \(16 bytes\); the file is truncated or its header lies$/,
    );
  });

  it('rejects overlapping tensors', async () => {
    await expectFormatError(
      raw(
        {
          a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
          b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
        },
        16,
      ),
      /tensors "a" and "b" overlap/,
    );
  });
});
