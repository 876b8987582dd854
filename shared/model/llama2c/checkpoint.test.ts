/**
 * The llama2.c legacy checkpoint reader on the real stories260K.bin (../shared/models), and on
 * small hand-built files for the cases the real one cannot show (unshared classifier, bad headers).
 * Expected offsets are computed here from llama2.c's layout independently of the reader.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bytesSource, type ByteSource } from '../byte-source.ts';
import { blockTensorNames, expectedTensors } from '../checkpoint.ts';
import { openLlama2cCheckpoint } from './checkpoint.ts';
import { rejection } from '../../../testkit/rejection.ts';

const MODELS = new URL('../../../../shared/models/', import.meta.url);
const CKPT_PATH = new URL('stories260K.bin', MODELS).pathname;
const ckptBytes = new Uint8Array(await readFile(CKPT_PATH));
const tokBytes = new Uint8Array(await readFile(new URL('tok512.bin', MODELS)));
const llamaTokBytes = new Uint8Array(await readFile(new URL('tokenizer.bin', MODELS)));
const tmp = await mkdtemp(join(tmpdir(), 'infermesh-llama2c-'));
afterAll(() => rm(tmp, { recursive: true, force: true }));

/** A ByteSource that records every read, to show tensors are read lazily. */
function recording(name: string, bytes: Uint8Array): ByteSource & { reads: [number, number][] } {
  const inner = bytesSource(name, bytes);
  const reads: [number, number][] = [];
  return { ...inner, reads, read: (o, l) => (reads.push([o, l]), inner.read(o, l)) };
}

const tokenizer = () => bytesSource('/models/tok512.bin', tokBytes);


/** stories260K: dim 64, hidden 172, 5 layers, 8 heads of 8, 4 kv heads, vocab 512, seq 512. */
const D = 64, H = 172, L = 5, HS = 8, KV = 32, V = 512;
const OFF = (() => {
  const f = 4;
  let o = 28;
  const at = (n: number) => ((o += n * f), o - n * f);
  return {
    embed: at(V * D),
    rmsAtt: at(L * D),
    wq: at(L * D * D),
    wk: at(L * KV * D),
    wv: at(L * KV * D),
    wo: at(L * D * D),
    rmsFfn: at(L * D),
    w1: at(L * H * D),
    w2: at(L * D * H),
    w3: at(L * H * D),
    rmsFinal: at(D),
    freqs: at(2 * 512 * (HS / 2)),
    end: o,
  };
})();

function rawFloats(offset: number, count: number): Float32Array {
  return new Float32Array(ckptBytes.slice(offset, offset + count * 4).buffer);
}

describe('openLlama2cCheckpoint on stories260K.bin', () => {
  it('reads the config from the header', async () => {
    const ck = await openLlama2cCheckpoint(bytesSource(CKPT_PATH, ckptBytes), tokenizer());
    expect(ck.config).toEqual({
      architecture: 'llama',
      dim: 64,
      hiddenDim: 172,
      nLayers: 5,
      nHeads: 8,
      nKvHeads: 4,
      headDim: 8,
      vocabSize: 512,
      maxSeqLen: 512,
      ropeTheta: 10000,
      normEps: 1e-5,
      qkvBias: false,
      tiedEmbeddings: true,
    });
    expect(ck.source).toBe(CKPT_PATH);
    expect(ck.tensors()).toEqual(expectedTensors(ck.config));
    expect(ck.tensors().some((t) => t.name === 'lm_head')).toBe(false);
    expect(ck.tokenizer).toEqual({ kind: 'llama2c', file: 'tok512.bin', bytes: tokBytes });
    expect(OFF.end).toBe(ckptBytes.byteLength); // our independent layout accounts for every byte
  });

  it('reads tensors lazily, one byte range each', async () => {
    const src = recording(CKPT_PATH, ckptBytes);
    const ck = await openLlama2cCheckpoint(src, tokenizer());
    expect(src.reads).toEqual([[0, 28]]);
    await ck.read('layers.3.w2');
    expect(src.reads.slice(1)).toEqual([[OFF.w2 + 3 * D * H * 4, D * H * 4]]);
  });

  it('returns unpermuted tensors byte for byte', async () => {
    const ck = await openLlama2cCheckpoint(bytesSource(CKPT_PATH, ckptBytes), tokenizer());
    const n = blockTensorNames(4);
    expect(await ck.read('embed')).toEqual(rawFloats(OFF.embed, V * D));
    expect(await ck.read(n.attnNorm)).toEqual(rawFloats(OFF.rmsAtt + 4 * D * 4, D));
    expect(await ck.read(n.wv)).toEqual(rawFloats(OFF.wv + 4 * KV * D * 4, KV * D));
    expect(await ck.read(n.wo)).toEqual(rawFloats(OFF.wo + 4 * D * D * 4, D * D));
    expect(await ck.read(n.ffnNorm)).toEqual(rawFloats(OFF.rmsFfn + 4 * D * 4, D));
    expect(await ck.read(n.w1)).toEqual(rawFloats(OFF.w1 + 4 * H * D * 4, H * D));
    expect(await ck.read(n.w3)).toEqual(rawFloats(OFF.w3 + 4 * H * D * 4, H * D));
    expect(await ck.read('norm')).toEqual(rawFloats(OFF.rmsFinal, D));
    await expect(ck.read('lm_head')).rejects.toThrow(/no tensor named lm_head/);
  });

  it('moves q/k rows from interleaved pairs to rotate-half order within each head', async () => {
    const ck = await openLlama2cCheckpoint(bytesSource(CKPT_PATH, ckptBytes), tokenizer());
    for (const [name, base, rows] of [
      ['wq', OFF.wq, D],
      ['wk', OFF.wk, KV],
    ] as const) {
      const layer = 2;
      const raw = rawFloats(base + layer * rows * D * 4, rows * D);
      const got = await ck.read(`layers.${layer}.${name}`);
      const row = (a: Float32Array, r: number) => a.subarray(r * D, (r + 1) * D);
      for (let h = 0; h < rows / HS; h++) {
        for (let i = 0; i < HS / 2; i++) {
          expect(row(got, h * HS + i)).toEqual(row(raw, h * HS + 2 * i));
          expect(row(got, h * HS + HS / 2 + i)).toEqual(row(raw, h * HS + 2 * i + 1));
        }
      }
    }
  });

  it('rejects a truncated copy, naming the file', async () => {
    const path = join(tmp, 'stories260K-truncated.bin');
    await writeFile(path, ckptBytes.subarray(0, ckptBytes.byteLength - 100));
    const err = await rejection(openLlama2cCheckpoint(bytesSource(path, new Uint8Array(await readFile(path))), tokenizer()));
    expect(err.name).toBe('CheckpointFormatError');
    expect(err.message).toBe(`${path}: truncated checkpoint: header says 1056540 bytes, file has 1056440`);
  });

  it('rejects trailing bytes', async () => {
    const longer = new Uint8Array(ckptBytes.byteLength + 4);
    longer.set(ckptBytes);
    const err = await rejection(openLlama2cCheckpoint(bytesSource('long.bin', longer), tokenizer()));
    expect(err.name).toBe('CheckpointFormatError');
    expect(err.message).toMatch(/^long\.bin: checkpoint is larger than its header says/);
  });

  it('asks for a tokenizer when none is given', async () => {
    const err = await rejection(openLlama2cCheckpoint(bytesSource(CKPT_PATH, ckptBytes), null));
    expect(err.name).toBe('TokenizerError');
    expect(err.message).toBe(`${CKPT_PATH}: missing tokenizer: pass --tokenizer <file> for llama2.c checkpoints`);
  });

  it('rejects a tokenizer made for another vocabulary', async () => {
    const err = await rejection(
      openLlama2cCheckpoint(bytesSource(CKPT_PATH, ckptBytes), bytesSource('/models/tokenizer.bin', llamaTokBytes)),
    );
    expect(err.name).toBe('TokenizerError');
    expect(err.message).toMatch(/^\/models\/tokenizer\.bin: tokenizer has 32000 tokens but the checkpoint's vocabulary has 512/);
  });

  it('closes both sources once', async () => {
    let closes = 0;
    const counted = (s: ByteSource): ByteSource => ({ ...s, close: async () => void closes++ });
    const ck = await openLlama2cCheckpoint(counted(bytesSource(CKPT_PATH, ckptBytes)), counted(tokenizer()));
    await ck.close?.();
    await ck.close?.();
    expect(closes).toBe(2);
  });
});

/** A tiny legacy checkpoint whose float at index i is i, so every tensor shows where it came from. */
function buildCheckpoint(h: number[], floats?: number): Uint8Array {
  const [dim, hidden, layers, heads, kvHeads, vocab, seq] = h;
  const hs = dim / heads;
  const kv = kvHeads * hs;
  const count =
    floats ??
    Math.abs(vocab) * dim +
      layers * (2 * dim + dim * dim * 2 + 2 * dim * kv + 3 * dim * hidden) +
      dim +
      seq * hs +
      (vocab < 0 ? -vocab * dim : 0);
  const out = new Uint8Array(28 + 4 * count);
  const view = new DataView(out.buffer);
  h.forEach((v, i) => view.setInt32(i * 4, v, true));
  for (let i = 0; i < count; i++) view.setFloat32(28 + 4 * i, i, true);
  return out;
}

/** A tokenizer file with `n` single-byte tokens: enough to pass the vocabulary-size check. */
function tinyTokenizer(n: number): ByteSource {
  const out = new Uint8Array(4 + n * 9);
  const view = new DataView(out.buffer);
  for (let i = 0; i < n; i++) {
    view.setInt32(4 + i * 9 + 4, 1, true);
    out[4 + i * 9 + 8] = 65 + (i % 26);
  }
  return bytesSource('tiny-tok.bin', out);
}

describe('openLlama2cCheckpoint on hand-built files', () => {
  it('reads an unshared classifier from the end of the file', async () => {
    // dim 8, hidden 12, 1 layer, 2 heads, 1 kv head, vocab -10 (unshared), seq 4
    const bytes = buildCheckpoint([8, 12, 1, 2, 1, -10, 4]);
    const ck = await openLlama2cCheckpoint(bytesSource('tiny.bin', bytes), tinyTokenizer(10));
    expect(ck.config.tiedEmbeddings).toBe(false);
    expect(ck.config.vocabSize).toBe(10);
    expect(ck.tensors().at(-1)).toEqual({ name: 'lm_head', shape: [10, 8] });
    const total = (bytes.byteLength - 28) / 4;
    const head = await ck.read('lm_head');
    expect(head[0]).toBe(total - 80);
    expect(head[79]).toBe(total - 1);
    // wk of 1 kv head of size 4: rows 0,2 | 1,3 of the interleaved layout
    const wkStart = 10 * 8 + 8 + 8 * 8;
    const wk = await ck.read('layers.0.wk');
    expect([0, 1, 2, 3].map((r) => wk[r * 8] - wkStart)).toEqual([0, 16, 8, 24]);
  });

  it('rejects nonsense headers with ModelConfigError', async () => {
    const cases: [number[], RegExp][] = [
      [[0, 12, 1, 2, 1, 10, 4], /dim must be positive, got 0/],
      [[8, -12, 1, 2, 1, 10, 4], /hidden_dim must be positive, got -12/],
      [[8, 12, 1, 3, 1, 10, 4], /dim 8 is not a multiple of n_heads 3/],
      [[8, 12, 1, 2, 4, 10, 4], /n_kv_heads 4 is more than n_heads 2/],
      [[8, 12, 1, 4, 3, 10, 4], /not a multiple of key\/value heads/],
      [[8, 12, 1, 8, 1, 10, 4], /head size 1 must be even/],
      [[8, 12, 1, 2, 1, 0, 4], /vocab_size must not be 0/],
    ];
    for (const [header, message] of cases) {
      const err = await rejection(openLlama2cCheckpoint(bytesSource('bad.bin', buildCheckpoint(header, 16)), tinyTokenizer(10)));
      expect(err.name, header.join(',')).toBe('ModelConfigError');
      expect(err.message, header.join(',')).toMatch(message);
      expect(err.message.startsWith('bad.bin: ')).toBe(true);
    }
  });

  it('rejects a file shorter than its header and the newer versioned exports', async () => {
    const short = await rejection(openLlama2cCheckpoint(bytesSource('short.bin', new Uint8Array(10)), tinyTokenizer(1)));
    expect(short.name).toBe('CheckpointFormatError');
    expect(short.message).toMatch(/^short\.bin: truncated checkpoint/);
    const v2 = new Uint8Array(256);
    new DataView(v2.buffer).setUint32(0, 0x616b3432, true);
    new DataView(v2.buffer).setInt32(4, 2, true);
    const err = await rejection(openLlama2cCheckpoint(bytesSource('v2.bin', v2), tinyTokenizer(1)));
    expect(err.name).toBe('CheckpointFormatError');
    expect(err.message).toMatch(/version 2 export; only the legacy format/);
  });
});
