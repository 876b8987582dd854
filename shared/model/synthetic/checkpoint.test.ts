/**
 * Synthetic checkpoints: presets, canonical shapes, seeded determinism, generation speed, and
 * that the initialisation keeps a forward pass numerically sane through every layer.
 */
import { describe, expect, it } from 'vitest';
import { blockTensorNames, expectedTensors } from '../checkpoint.ts';
import type { ModelConfig } from '../config.ts';
import { blockForward, createReferenceModel, embed, type LayerCache } from '../../../testkit/reference/forward.ts';
import { createSyntheticCheckpoint, createSyntheticCheckpointFromConfig, syntheticTensor } from './checkpoint.ts';
import { fillNormal } from './random.ts';
import { SYNTHETIC_PRESETS, syntheticConfig } from './presets.ts';

/** FNV-1a over the float32 bit patterns: enough to tell tensors apart, no Node crypto needed. */
function hashTensor(t: Float32Array): string {
  const words = new Uint32Array(t.buffer, t.byteOffset, t.length);
  let h = 0x811c9dc5;
  let g = 0x9747b28c;
  for (let i = 0; i < words.length; i++) {
    h = Math.imul(h ^ words[i], 0x01000193);
    g = Math.imul(g ^ words[i], 0x5bd1e995) ^ (g >>> 15);
  }
  return `${(h >>> 0).toString(16)}:${(g >>> 0).toString(16)}:${t.length}`;
}

async function hashAll(preset: string, seed: number): Promise<Map<string, string>> {
  const ck = createSyntheticCheckpoint(preset, seed);
  const out = new Map<string, string>();
  for (const { name } of ck.tensors()) out.set(name, hashTensor(await ck.read(name)));
  return out;
}

const rms = (x: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i] * x[i];
  return Math.sqrt(s / x.length);
};

describe('synthetic presets', () => {
  it('are valid Llama configs of the advertised sizes', () => {
    expect(Object.keys(SYNTHETIC_PRESETS)).toEqual(['tiny', '110m', '1b']);
    const params = (p: string) => expectedTensors(syntheticConfig(p)).reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0);
    expect(params('110m')).toBeGreaterThan(100e6);
    expect(params('110m')).toBeLessThan(140e6);
    expect(params('1b')).toBeGreaterThan(1.0e9);
    expect(params('1b')).toBeLessThan(1.2e9);
    const tiny = syntheticConfig('tiny');
    expect(tiny.nKvHeads).toBeLessThan(tiny.nHeads);
    expect(tiny.qkvBias).toBe(true);
    expect(tiny.tiedEmbeddings).toBe(false);
    for (const p of Object.keys(SYNTHETIC_PRESETS)) expect(syntheticConfig(p).architecture).toBe('llama');
  });

  it('hands out copies, so a caller cannot change the preset', () => {
    syntheticConfig('tiny').dim = 1;
    expect(syntheticConfig('tiny').dim).toBe(64);
  });

  it('rejects an unknown preset with a UsageError naming the known ones', () => {
    for (const f of [() => syntheticConfig('7b'), () => createSyntheticCheckpoint('7b', 1)]) {
      expect(f).toThrow(expect.objectContaining({ name: 'UsageError', message: 'unknown synthetic preset 7b (known: tiny, 110m, 1b)' }));
    }
    // not fooled by Object.prototype keys
    expect(() => syntheticConfig('toString')).toThrow(expect.objectContaining({ name: 'UsageError' }));
  });
});

describe('synthetic checkpoint', () => {
  it('lists the canonical tensors of each preset and reads them at those sizes', async () => {
    for (const preset of Object.keys(SYNTHETIC_PRESETS)) {
      const ck = createSyntheticCheckpoint(preset, 1);
      expect(ck.source).toBe(`synthetic:${preset}`);
      expect(ck.tensors()).toEqual(expectedTensors(ck.config));
    }
    // reading: all of tiny, the small tensors of the large presets
    const tiny = createSyntheticCheckpoint('tiny', 1);
    for (const { name, shape } of tiny.tensors()) expect((await tiny.read(name)).length).toBe(shape.reduce((a, b) => a * b, 1));
    const big = createSyntheticCheckpoint('1b', 1);
    expect((await big.read('layers.21.attn_norm')).length).toBe(2048);
    expect((await big.read('norm')).length).toBe(2048);
  });

  it('rejects unknown tensor names and bad seeds', async () => {
    const ck = createSyntheticCheckpoint('tiny', 1);
    await expect(ck.read('layers.3.wq')).rejects.toMatchObject({ name: 'CheckpointFormatError' });
    await expect(ck.read('layers.0.wq.weight')).rejects.toMatchObject({ name: 'CheckpointFormatError' });
    expect(() => createSyntheticCheckpoint('tiny', 0.5)).toThrow(expect.objectContaining({ name: 'UsageError' }));
    expect(() => createSyntheticCheckpoint('tiny', NaN)).toThrow(expect.objectContaining({ name: 'UsageError' }));
  });

  it('gives identical bytes for the same seed in any read order, different bytes for another seed', async () => {
    const a = await hashAll('tiny', 42);
    const b = await hashAll('tiny', 42);
    expect(b).toEqual(a);

    // reverse order, fresh checkpoint object, and the synchronous entry point
    const ck = createSyntheticCheckpoint('tiny', 42);
    for (const { name } of [...ck.tensors()].reverse()) {
      expect(hashTensor(await ck.read(name))).toBe(a.get(name));
      expect(hashTensor(syntheticTensor(ck.config, 42, name))).toBe(a.get(name));
    }

    const c = await hashAll('tiny', 43);
    for (const [name, h] of a) expect(c.get(name), name).not.toBe(h);
    // every tensor is its own stream: no two tensors of one model share values
    const sameShapeNorms = [...a].filter(([n]) => n.endsWith('norm')).map(([, h]) => h);
    expect(new Set(sameShapeNorms).size).toBe(sameShapeNorms.length);
  });

  it('ships a llama2.c tokenizer of the model vocabulary', () => {
    const ck = createSyntheticCheckpoint('tiny', 1);
    expect(ck.tokenizer.kind).toBe('llama2c');
    if (ck.tokenizer.kind === 'llama2c') {
      expect(ck.tokenizer.file).toBe('tokenizer.bin');
      const view = new DataView(ck.tokenizer.bytes.buffer, ck.tokenizer.bytes.byteOffset);
      expect(view.getInt32(0, true)).toBeGreaterThan(0);
    }
    expect(ck.tokenizer).toBe(ck.tokenizer); // built once
  });

  it('initialises tensors at the documented scales', async () => {
    const ck = createSyntheticCheckpoint('110m', 7);
    const n = blockTensorNames(0);
    const stats = async (name: string) => {
      const t = await ck.read(name);
      let s = 0;
      for (const v of t) s += v;
      const mean = s / t.length;
      return { mean, std: Math.sqrt(rms(t) ** 2 - mean * mean) };
    };
    const close = (got: number, want: number) => expect(Math.abs(got / want - 1)).toBeLessThan(0.03);
    const attnNorm = await stats(n.attnNorm);
    expect(attnNorm.mean).toBeCloseTo(1, 1);
    close(attnNorm.std, 0.1);
    close((await stats(n.wq)).std, 1 / Math.sqrt(768));
    close((await stats(n.w1)).std, 1 / Math.sqrt(768));
    close((await stats(n.wo)).std, 1 / Math.sqrt(768 * 24));
    close((await stats(n.w2)).std, 1 / Math.sqrt(2048 * 24));
    const tinyBias = await createSyntheticCheckpoint('tiny', 7).read('layers.0.bq');
    expect(rms(tinyBias)).toBeGreaterThan(0.05);
    expect(rms(tinyBias)).toBeLessThan(0.2);
  });

  it('generates one 110m block quickly (speed is logged, not asserted)', async () => {
    const ck = createSyntheticCheckpoint('110m', 1);
    const n = blockTensorNames(5);
    const names = Object.values(n).filter((name) => ck.tensors().some((t) => t.name === name));
    fillNormal(new Float32Array(1 << 20), 0, 'warm-up', 1); // let the JIT compile the loop first
    const t0 = performance.now();
    let values = 0;
    for (const name of names) values += (await ck.read(name)).length;
    const seconds = (performance.now() - t0) / 1000;
    console.log(`synthetic 110m block: ${values} values in ${(seconds * 1000).toFixed(0)} ms = ${(values / seconds / 1e6).toFixed(0)}M values/s`);
    expect(values).toBe(4 * 768 * 768 + 3 * 768 * 2048 + 2 * 768);
  });
});

/** The reference forward pass's weights: each synthetic tensor generated once, when first read. */
function syntheticWeights(config: ModelConfig, seed: number): (name: string) => Float32Array {
  const cache = new Map<string, Float32Array>();
  return (name) => {
    let t = cache.get(name);
    if (!t) cache.set(name, (t = syntheticTensor(config, seed, name)));
    return t;
  };
}

describe('synthetic weights in the reference forward pass', () => {
  it('keeps the hidden state and logits of tiny sane through every layer', () => {
    const config = syntheticConfig('tiny');
    const weights = syntheticWeights(config, 3);
    const tokens = [1, 300, 407, 409, 500, 12, 259, 42, 42, 42];
    const positions = tokens.map((_, i) => i);

    let hidden = embed(config, weights, tokens);
    const rmsPerLayer = [rms(hidden)];
    for (let layer = 0; layer < config.nLayers; layer++) {
      const layerCache: LayerCache = { k: [], v: [] };
      hidden = blockForward(config, weights, layer, hidden, positions, layerCache);
      rmsPerLayer.push(rms(hidden));
    }
    for (const r of rmsPerLayer) {
      expect(r).toBeGreaterThan(0.1);
      expect(r).toBeLessThan(100);
    }

    const logits = createReferenceModel(config, weights).forward(tokens, positions);
    const V = config.vocabSize;
    for (let s = 0; s < tokens.length; s++) {
      const row = logits.subarray(s * V, (s + 1) * V);
      const max = Math.max(...row);
      let z = 0;
      for (const l of row) z += Math.exp(l - max);
      let entropy = 0;
      for (const l of row) {
        const p = Math.exp(l - max) / z;
        entropy -= p > 0 ? p * Math.log(p) : 0;
      }
      // neither uniform nor one-hot
      expect(entropy).toBeGreaterThan(0.2 * Math.log(V));
      expect(entropy).toBeLessThan(0.95 * Math.log(V));
      expect(1 / z).toBeLessThan(0.9);
    }
  });

  it('keeps a 110m block (GPT-2-scaled output projections) near the input scale', () => {
    const config = syntheticConfig('110m');
    const weights = syntheticWeights(config, 3);
    // a unit-RMS residual stream, as the N(0, 1) embedding gives
    const S = 4;
    const hidden = fillNormal(new Float32Array(S * config.dim), 3, 'test-hidden', 1);
    const out = blockForward(config, weights, 0, hidden, [0, 1, 2, 3], { k: [], v: [] });
    const delta = out.map((v, i) => v - hidden[i]);
    // the block adds something, but ~1/sqrt(nLayers) of the stream, not more
    expect(rms(delta)).toBeGreaterThan(0.05);
    expect(rms(delta)).toBeLessThan(0.5);
  });

  it('works for any config via createSyntheticCheckpointFromConfig', async () => {
    const config = { ...syntheticConfig('tiny'), nLayers: 1, qkvBias: false, tiedEmbeddings: true };
    const ck = createSyntheticCheckpointFromConfig(config, 5, 'synthetic:custom');
    expect(ck.tensors().map((t) => t.name)).not.toContain('lm_head');
    expect(ck.tensors().map((t) => t.name)).not.toContain('layers.0.bq');
    expect((await ck.read('embed')).length).toBe(512 * 64);
  });
});
