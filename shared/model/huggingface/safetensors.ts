/**
 * Reads safetensors files (https://github.com/huggingface/safetensors) through a ByteSource:
 * the header is parsed and checked once, then each tensor is read by its own byte range, so a
 * multi-GB shard is never held in memory. A header that lies (offsets past the end, overlapping
 * tensors, sizes that disagree with shape and dtype) is rejected before any weight is used.
 */
import { CheckpointFormatError } from '../../errors.ts';
import type { ByteSource } from '../byte-source.ts';
import { bf16BytesToF32, f16BytesToF32, f32BytesToF32 } from './float16.ts';

/** Element sizes of every dtype the safetensors format defines; only some can be read. */
const DTYPE_BYTES: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
};

export const READABLE_DTYPES = ['F32', 'F16', 'BF16'] as const;
export type ReadableDtype = (typeof READABLE_DTYPES)[number];

export interface SafetensorsEntry {
  name: string;
  dtype: string;
  shape: number[];
  /** Absolute byte range in the file (header already accounted for). */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  source: string;
  /** Byte offset of the data section: 8 + header length. */
  dataStart: number;
  tensors: Map<string, SafetensorsEntry>;
  metadata: Record<string, string>;
}

/** The safetensors reference implementation refuses headers over 100 MB; so do we, before allocating. */
const MAX_HEADER_BYTES = 100_000_000;

/** Reads in slices so converting a large BF16 tensor never holds its raw bytes and floats at once. */
const READ_CHUNK_BYTES = 16 * 1024 * 1024;

export function isReadableDtype(dtype: string): dtype is ReadableDtype {
  return (READABLE_DTYPES as readonly string[]).includes(dtype);
}

export async function parseSafetensorsHeader(source: ByteSource): Promise<SafetensorsHeader> {
  const fail = (msg: string): never => {
    throw new CheckpointFormatError(msg, { source: source.name });
  };
  if (source.size < 8) fail(`not a safetensors file: ${source.size} bytes is too short for the 8-byte header length`);
  const lenBytes = await source.read(0, 8);
  const view = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8);
  const headerLen = view.getUint32(0, true) + view.getUint32(4, true) * 2 ** 32;
  if (headerLen > source.size - 8) {
    fail(`safetensors header length ${headerLen} runs past the end of the file (${source.size} bytes); the file is truncated or not safetensors`);
  }
  if (headerLen > MAX_HEADER_BYTES) fail(`safetensors header length ${headerLen} exceeds the 100 MB limit`);
  const dataStart = 8 + headerLen;
  const dataSize = source.size - dataStart;

  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(await source.read(8, headerLen)));
  } catch (err) {
    fail(`safetensors header is not valid JSON (${(err as Error).message})`);
  }
  if (!isPlainObject(json)) fail('safetensors header is not a JSON object');
  const obj = json as Record<string, unknown>;

  const tensors = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(obj)) {
    if (name === '__metadata__') {
      if (raw !== null && !isPlainObject(raw)) fail('safetensors __metadata__ is not an object');
      metadata = (raw ?? {}) as Record<string, string>;
      continue;
    }
    tensors.set(name, parseEntry(name, raw, dataStart, dataSize, fail));
  }

  // Overlapping ranges mean the header lies about where at least one tensor lives.
  const sorted = [...tensors.values()].filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1];
    const b = sorted[i];
    if (b.begin < a.end) {
      fail(`tensors "${a.name}" and "${b.name}" overlap (data_offsets [${a.begin - dataStart}, ${a.end - dataStart}] and [${b.begin - dataStart}, ${b.end - dataStart}])`);
    }
  }
  return { source: source.name, dataStart, tensors, metadata };
}

function parseEntry(
  name: string,
  raw: unknown,
  dataStart: number,
  dataSize: number,
  fail: (msg: string) => never,
): SafetensorsEntry {
  if (!isPlainObject(raw)) fail(`tensor "${name}" header entry is not an object`);
  const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
  if (typeof dtype !== 'string') fail(`tensor "${name}" has no dtype`);
  // hasOwn: a dtype named "constructor" must not find Object.prototype.
  const size = Object.hasOwn(DTYPE_BYTES, dtype as string) ? DTYPE_BYTES[dtype as string] : undefined;
  if (size === undefined) {
    fail(`tensor "${name}" has unknown dtype ${JSON.stringify(dtype)} (readable: ${READABLE_DTYPES.join(', ')})`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    fail(`tensor "${name}" has an invalid shape ${JSON.stringify(shape)}`);
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
    offsets[0] > offsets[1]
  ) {
    fail(`tensor "${name}" has invalid data_offsets ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as [number, number];
  const dims = shape as number[];
  const needed = dims.reduce((a, b) => a * b, 1) * (size as number);
  if (end - begin !== needed) {
    fail(`tensor "${name}" data_offsets [${begin}, ${end}] span ${end - begin} bytes but ${dtype} shape [${dims.join(', ')}] needs ${needed}`);
  }
  if (end > dataSize) {
    fail(`tensor "${name}" data_offsets [${begin}, ${end}] run past the end of the data (${dataSize} bytes); the file is truncated or its header lies`);
  }
  return { name, dtype: dtype as string, shape: dims, begin: dataStart + begin, end: dataStart + end };
}

/** Reads one tensor's bytes from `source` and converts them to float32 (F32, F16 and BF16 only). */
export async function readSafetensorsTensor(
  source: ByteSource,
  entry: SafetensorsEntry,
  chunkBytes = READ_CHUNK_BYTES,
): Promise<Float32Array> {
  if (!isReadableDtype(entry.dtype)) {
    throw new CheckpointFormatError(
      `tensor "${entry.name}" has dtype ${entry.dtype}; infermesh reads only ${READABLE_DTYPES.join(', ')} weights`,
      { source: source.name },
    );
  }
  const elemBytes = DTYPE_BYTES[entry.dtype];
  const count = (entry.end - entry.begin) / elemBytes;
  const out = new Float32Array(count);
  const convert = entry.dtype === 'F32' ? f32BytesToF32 : entry.dtype === 'F16' ? f16BytesToF32 : bf16BytesToF32;
  const chunkElems = Math.max(1, Math.floor(chunkBytes / elemBytes));
  for (let i = 0; i < count; i += chunkElems) {
    const n = Math.min(chunkElems, count - i);
    const bytes = await source.read(entry.begin + i * elemBytes, n * elemBytes);
    convert(bytes, out, i);
  }
  return out;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
