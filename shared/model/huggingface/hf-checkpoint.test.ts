import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { nodeFileOpener } from '../../../worker/node/node-files.ts';
import { CheckpointFormatError, ModelConfigError, TokenizerError } from '../../errors.ts';
import { blockTensorNames, EMBED_TENSOR, expectedTensors, FINAL_NORM_TENSOR, LM_HEAD_TENSOR } from '../checkpoint.ts';
import type { ModelConfig } from '../config.ts';
import { openHuggingFaceCheckpoint } from './hf-checkpoint.ts';
import { canonicalToHf } from './tensor-names.ts';
import { bytesSource, type FileOpener } from '../byte-source.ts';
import {
  huggingFaceCheckpointFiles,
  TINY_QWEN2,
  makeHfTensors,
  tinyByteLevelTokenizerJson,
  toHfConfigJson,
  writeHuggingFaceCheckpoint,
  type WritableTensor,
} from '../../../testkit/huggingface-checkpoint.ts';

const root = mkdtempSync(join(tmpdir(), 'infermesh-hf-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirCounter = 0;
const newDir = () => join(root, `ckpt-${++dirCounter}`);

const qwen = TINY_QWEN2;
const llama: ModelConfig = { ...qwen, architecture: 'llama', qkvBias: false, tiedEmbeddings: false, nKvHeads: 4 };

function data(t: WritableTensor): number[] {
  return 'data' in t ? Array.from(t.data) : [];
}

async function openError(dir: string): Promise<Error & { shortMessage: string; source?: string }> {
  const err = await openHuggingFaceCheckpoint(dir, nodeFileOpener).then(
    () => null,
    (e: unknown) => e,
  );
  if (!(err instanceof Error)) throw new Error('expected openHuggingFaceCheckpoint to fail');
  const e = err as Error & { shortMessage: string; source?: string };
  expect(e.shortMessage).not.toContain('\n');
  return e;
}

describe('openHuggingFaceCheckpoint', () => {
  it('reads a Qwen2-style GQA checkpoint with q/k/v bias under canonical names', async () => {
    const dir = newDir();
    const tensors = makeHfTensors(qwen, { seed: 3 });
    writeHuggingFaceCheckpoint(dir, qwen, { ...tensors, 'model.layers.0.self_attn.rotary_emb.inv_freq': { shape: [2], data: [1, 0.01] } }, undefined, {
      tokenizerConfig: { bos_token: null, eos_token: '<|end_of_text|>' },
    });
    const ckpt = await openHuggingFaceCheckpoint(dir, nodeFileOpener);
    try {
      expect(ckpt.source).toBe(dir);
      expect(ckpt.config).toEqual(qwen);
      expect(ckpt.tensors()).toEqual(expectedTensors(qwen));
      expect(ckpt.tensors().some((t) => t.name === LM_HEAD_TENSOR)).toBe(false);
      const n = blockTensorNames(1);
      expect(await ckpt.read(n.wk)).toHaveLength(2 * 4 * 16);
      expect([...(await ckpt.read(n.wk))]).toEqual(data(tensors['model.layers.1.self_attn.k_proj.weight']).map(Math.fround));
      expect([...(await ckpt.read(n.bq))]).toEqual(data(tensors['model.layers.1.self_attn.q_proj.bias']).map(Math.fround));
      expect([...(await ckpt.read(n.bv))]).toEqual(data(tensors['model.layers.1.self_attn.v_proj.bias']).map(Math.fround));
      expect([...(await ckpt.read(n.w1))]).toEqual(data(tensors['model.layers.1.mlp.gate_proj.weight']).map(Math.fround));
      expect([...(await ckpt.read(n.w2))]).toEqual(data(tensors['model.layers.1.mlp.down_proj.weight']).map(Math.fround));
      expect([...(await ckpt.read(n.w3))]).toEqual(data(tensors['model.layers.1.mlp.up_proj.weight']).map(Math.fround));
      expect([...(await ckpt.read(EMBED_TENSOR))]).toEqual(data(tensors['model.embed_tokens.weight']).map(Math.fround));
      expect([...(await ckpt.read(FINAL_NORM_TENSOR))]).toEqual(data(tensors['model.norm.weight']).map(Math.fround));
      await expect(ckpt.read('rotary_emb')).rejects.toBeInstanceOf(CheckpointFormatError);

      expect(ckpt.tokenizer.kind).toBe('huggingface');
      if (ckpt.tokenizer.kind !== 'huggingface') return;
      expect(JSON.parse(new TextDecoder().decode(ckpt.tokenizer.tokenizerJson))).toEqual(tinyByteLevelTokenizerJson());
      expect(JSON.parse(new TextDecoder().decode(ckpt.tokenizer.tokenizerConfigJson!))).toEqual({ bos_token: null, eos_token: '<|end_of_text|>' });
    } finally {
      await ckpt.close?.();
    }
  });

  it('runs on any FileOpener (in memory here, as in a browser)', async () => {
    const files = huggingFaceCheckpointFiles(qwen, makeHfTensors(qwen), undefined, { shards: 2 });
    const opener: FileOpener = {
      join: (dir, name) => `${dir}/${name}`,
      open: async (path) => {
        const name = path.slice('mem:/ckpt/'.length);
        return Object.hasOwn(files, name) ? bytesSource(path, files[name]) : null;
      },
    };
    const ckpt = await openHuggingFaceCheckpoint('mem:/ckpt', opener);
    expect(ckpt.config).toEqual(qwen);
    expect(await ckpt.read(blockTensorNames(0).bk)).toHaveLength(8);
  });

  it('reads a sharded checkpoint through model.safetensors.index.json, in F16 and BF16', async () => {
    for (const dtype of ['F16', 'BF16'] as const) {
      const dir = newDir();
      const tensors = makeHfTensors(llama, { dtype });
      writeHuggingFaceCheckpoint(dir, llama, tensors, undefined, { shards: 3 });
      const ckpt = await openHuggingFaceCheckpoint(dir, nodeFileOpener);
      expect(ckpt.tensors().map((t) => t.name)).toContain(LM_HEAD_TENSOR);
      for (const t of ckpt.tensors()) {
        const got = await ckpt.read(t.name);
        const want = data(tensors[canonicalToHf(t.name)]);
        const tol = dtype === 'F16' ? 1e-3 : 8e-3;
        got.forEach((v, i) => expect(Math.abs(v - want[i])).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(want[i]))));
      }
      await ckpt.close?.();
    }
  });

  it('takes transformers-saved configs verbatim (Llama with attention_bias reads q/k/v bias)', async () => {
    const dir = newDir();
    const withBias = { ...llama, qkvBias: true };
    writeHuggingFaceCheckpoint(dir, { ...toHfConfigJson(withBias), attention_bias: true }, makeHfTensors(withBias));
    const ckpt = await openHuggingFaceCheckpoint(dir, nodeFileOpener);
    expect(ckpt.config.qkvBias).toBe(true);
    expect(ckpt.tensors().map((t) => t.name)).toContain(blockTensorNames(0).bk);
    await ckpt.close?.();
  });

  it('reports a missing config.json, weights, shard or tokenizer clearly', async () => {
    const empty = newDir();
    writeHuggingFaceCheckpoint(empty, qwen, {});
    unlinkSync(join(empty, 'config.json'));
    const noConfig = await openError(empty);
    expect(noConfig).toBeInstanceOf(ModelConfigError);
    expect(noConfig.shortMessage).toBe(`missing model config: expected config.json in ${empty}`);

    const noWeights = newDir();
    writeHuggingFaceCheckpoint(noWeights, qwen, makeHfTensors(qwen));
    unlinkSync(join(noWeights, 'model.safetensors'));
    const e1 = await openError(noWeights);
    expect(e1).toBeInstanceOf(CheckpointFormatError);
    expect(e1.shortMessage).toBe(`missing weights: expected model.safetensors or model.safetensors.index.json in ${noWeights}`);
    writeFileSync(join(noWeights, 'pytorch_model.bin'), 'x');
    expect((await openError(noWeights)).shortMessage).toMatch(/only safetensors weights are supported/);

    const missingShard = newDir();
    writeHuggingFaceCheckpoint(missingShard, qwen, makeHfTensors(qwen), undefined, { shards: 2 });
    unlinkSync(join(missingShard, 'model-00002-of-00002.safetensors'));
    const e2 = await openError(missingShard);
    expect(e2).toBeInstanceOf(CheckpointFormatError);
    expect(e2.source).toBe(join(missingShard, 'model.safetensors.index.json'));
    expect(e2.shortMessage).toBe(`shard model-00002-of-00002.safetensors listed in model.safetensors.index.json is missing from ${missingShard}`);

    const noTokenizer = newDir();
    writeHuggingFaceCheckpoint(noTokenizer, qwen, makeHfTensors(qwen));
    unlinkSync(join(noTokenizer, 'tokenizer.json'));
    const e3 = await openError(noTokenizer);
    expect(e3).toBeInstanceOf(TokenizerError);
    expect(e3.shortMessage).toBe(`missing tokenizer: expected tokenizer.json in ${noTokenizer}`);
  });

  it('rejects a weight map that points at a tensor its shard lacks, or outside the directory', async () => {
    const dir = newDir();
    writeHuggingFaceCheckpoint(dir, qwen, makeHfTensors(qwen), undefined, { shards: 2 });
    const indexPath = join(dir, 'model.safetensors.index.json');
    const index = { weight_map: { 'model.norm.weight': 'model-00001-of-00002.safetensors' } };
    writeFileSync(indexPath, JSON.stringify(index));
    const e = await openError(dir);
    expect(e.shortMessage).toBe('tensor model.norm.weight is listed in model.safetensors.index.json but not present in this shard');
    expect(e.source).toBe(join(dir, 'model-00001-of-00002.safetensors'));

    writeFileSync(indexPath, JSON.stringify({ weight_map: { 'model.norm.weight': '../../etc/passwd' } }));
    expect((await openError(dir)).shortMessage).toMatch(/invalid shard name/);
    writeFileSync(indexPath, '{"weight_map": ');
    const bad = await openError(dir);
    expect(bad).toBeInstanceOf(CheckpointFormatError);
    expect(bad.shortMessage).toMatch(/^model.safetensors.index.json is not valid JSON/);
  });

  it('names tensor, file, expected and actual shape on a shape mismatch', async () => {
    const dir = newDir();
    const tensors = makeHfTensors(qwen);
    tensors['model.layers.1.self_attn.k_proj.weight'] = { shape: [16, 16], data: new Float32Array(256) };
    writeHuggingFaceCheckpoint(dir, qwen, tensors);
    const e = await openError(dir);
    expect(e).toBeInstanceOf(CheckpointFormatError);
    expect(e.source).toBe(join(dir, 'model.safetensors'));
    expect(e.shortMessage).toBe(`tensor model.layers.1.self_attn.k_proj.weight has shape [16, 16] but ${join(dir, 'config.json')} implies [8, 16]`);
  });

  it('names a missing tensor with its HF name and expected shape', async () => {
    const dir = newDir();
    const { ['model.layers.0.self_attn.v_proj.bias']: _, ...tensors } = makeHfTensors(qwen);
    writeHuggingFaceCheckpoint(dir, qwen, tensors);
    const e = await openError(dir);
    expect(e).toBeInstanceOf(CheckpointFormatError);
    expect(e.source).toBe(dir);
    expect(e.shortMessage).toBe('missing tensor model.layers.0.self_attn.v_proj.bias (expected shape [8])');
  });

  it('requires lm_head unless embeddings are tied, and ignores a redundant one when they are', async () => {
    const dir = newDir();
    const { ['lm_head.weight']: head, ...tensors } = makeHfTensors(llama);
    writeHuggingFaceCheckpoint(dir, llama, tensors);
    const e = await openError(dir);
    expect(e.shortMessage).toBe(`missing tensor lm_head.weight, and tie_word_embeddings is not true in ${join(dir, 'config.json')}`);

    const tied = newDir();
    writeHuggingFaceCheckpoint(tied, { ...llama, tiedEmbeddings: true }, { ...tensors, 'lm_head.weight': head });
    const ckpt = await openHuggingFaceCheckpoint(tied, nodeFileOpener);
    expect(ckpt.tensors().map((t) => t.name)).not.toContain(LM_HEAD_TENSOR);
    await ckpt.close?.();
  });

  it('refuses biases it has no place for, and unreadable dtypes, instead of ignoring them', async () => {
    const oBias = newDir();
    writeHuggingFaceCheckpoint(oBias, qwen, { ...makeHfTensors(qwen), 'model.layers.0.self_attn.o_proj.bias': { shape: [16], data: new Float32Array(16) } });
    expect((await openError(oBias)).shortMessage).toMatch(/^tensor model.layers.0.self_attn.o_proj.bias is a bias infermesh does not support/);

    const strayBias = newDir();
    writeHuggingFaceCheckpoint(strayBias, llama, { ...makeHfTensors(llama), 'model.layers.0.self_attn.q_proj.bias': { shape: [16], data: new Float32Array(16) } });
    expect((await openError(strayBias)).shortMessage).toMatch(/is a q\/k\/v bias but .*config.json says the model has none/);

    const int8 = newDir();
    writeHuggingFaceCheckpoint(int8, qwen, { ...makeHfTensors(qwen), 'model.norm.weight': { dtype: 'I8', shape: [16], bytes: new Uint8Array(16) } });
    expect((await openError(int8)).shortMessage).toBe('tensor model.norm.weight has dtype I8; infermesh reads only F32, F16 and BF16 weights');
  });

  it('surfaces config and header errors with their files', async () => {
    const dir = newDir();
    writeHuggingFaceCheckpoint(dir, { ...toHfConfigJson(qwen), architectures: ['PhiForCausalLM'] }, makeHfTensors(qwen));
    const e = await openError(dir);
    expect(e).toBeInstanceOf(ModelConfigError);
    expect(e.source).toBe(join(dir, 'config.json'));
    expect(e.shortMessage).toMatch(/^unknown architecture PhiForCausalLM \(supported: /);

    const lying = newDir();
    writeHuggingFaceCheckpoint(lying, qwen, makeHfTensors(qwen));
    writeFileSync(join(lying, 'model.safetensors'), new Uint8Array([200, 0, 0, 0, 0, 0, 0, 0, 123]));
    const e2 = await openError(lying);
    expect(e2).toBeInstanceOf(CheckpointFormatError);
    expect(e2.source).toBe(join(lying, 'model.safetensors'));
  });
});
