/**
 * `infermesh compile` on bad inputs, through the real command line: each failure must exit 1
 * with exactly one stderr line naming the file (or input) at fault and the problem, and must
 * leave no package, partial or otherwise, beside --out.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MANIFEST_FILE } from '../shared/model/manifest.ts';
import type { ModelConfig } from '../shared/model/config.ts';
import { encodeSafetensors, type SafetensorsHeader } from '../testkit/safetensors-writer.ts';
import {
  makeHfTensors,
  toHfConfigJson,
  writeHuggingFaceCheckpoint,
  type WritableTensor,
} from '../testkit/huggingface-checkpoint.ts';
import { REPO_ROOT, STORIES_260K, TOK_512, removeTempDirs, tempDir } from '../testkit/model-fixtures.ts';

afterAll(removeTempDirs);

const CLI = join(REPO_ROOT, 'bin', 'infermesh.js');

function compile(...args: string[]) {
  const result = spawnSync(process.execPath, [CLI, 'compile', ...args], { encoding: 'utf8', env: { ...process.env, INFERMESH_DEBUG: '' } });
  if (result.error) throw result.error;
  return result;
}

/** A fresh, empty folder to put --out in, so anything the command leaves behind shows up. */
async function outParent(): Promise<{ parent: string; out: string }> {
  const parent = await tempDir('infermesh-out-');
  return { parent, out: join(parent, 'pkg') };
}

/** Exit 1, exactly one stderr line naming `path` and matching `problem`; returns that line. */
function expectOneLineFailure(result: ReturnType<typeof compile>, path: string, problem: RegExp): string {
  expect(result.status).toBe(1);
  expect(result.stderr).toMatch(/^[^\n]+\n$/);
  const line = result.stderr.slice(0, -1);
  expect(line).toMatch(/^infermesh: error: /);
  expect(line).toContain(path);
  expect(line).toMatch(problem);
  return line;
}

function expectNoPackage(parent: string, out: string): void {
  expect(existsSync(out)).toBe(false);
  expect(readdirSync(parent)).toEqual([]);
}

/** Small Llama shape (q_proj and k_proj the same size) for checkpoints broken in one place. */
const llama: ModelConfig = {
  architecture: 'llama',
  dim: 16,
  hiddenDim: 24,
  nLayers: 2,
  nHeads: 4,
  nKvHeads: 4,
  headDim: 4,
  vocabSize: 267,
  maxSeqLen: 64,
  ropeTheta: 10000,
  normEps: 1e-5,
  qkvBias: false,
  tiedEmbeddings: false,
};

/** A checkpoint directory that is valid, ready to be broken by the caller. */
async function hfDir(config: ModelConfig | Record<string, unknown> = llama): Promise<string> {
  const dir = join(await tempDir('infermesh-hf-'), 'model');
  writeHuggingFaceCheckpoint(dir, config, makeHfTensors(llama));
  return dir;
}

/**
 * model.safetensors with every tensor packed in order, then `lie` rewrites the header's
 * data_offsets (sizes stay consistent with shape and dtype, so only the placement lies).
 */
function lyingSafetensors(tensors: Record<string, WritableTensor>, lie: (header: SafetensorsHeader, dataSize: number) => void): Uint8Array {
  return encodeSafetensors(tensors, undefined, lie);
}

describe('infermesh compile on bad input', () => {
  it('refuses a truncated llama2.c checkpoint, naming the file and both sizes', async () => {
    const { parent, out } = await outParent();
    const truncated = join(await tempDir(), 'stories260K-truncated.bin');
    writeFileSync(truncated, readFileSync(STORIES_260K).subarray(0, 100_000));
    const result = compile(truncated, '--tokenizer', TOK_512, '--out', out);
    expectOneLineFailure(result, truncated, /truncated checkpoint: header says \d+ bytes, file has 100000$/);
    expectNoPackage(parent, out);
  });

  it.each([
    {
      lie: 'places a tensor past the end of the data',
      tamper: (header: Parameters<Parameters<typeof lyingSafetensors>[1]>[0], dataSize: number) => {
        const t = header['model.norm.weight'];
        const span = t.data_offsets[1] - t.data_offsets[0];
        t.data_offsets = [dataSize, dataSize + span];
      },
      refusal: /tensor "model\.norm\.weight" data_offsets \[\d+, \d+\] run past the end of the data/,
    },
    {
      lie: 'gives two tensors overlapping bytes',
      tamper: (header: Parameters<Parameters<typeof lyingSafetensors>[1]>[0]) => {
        const q = header['model.layers.0.self_attn.q_proj.weight'];
        const k = header['model.layers.0.self_attn.k_proj.weight'];
        // k_proj slides 8 bytes back into q_proj's bytes, keeping its own size.
        k.data_offsets = [q.data_offsets[1] - 8, q.data_offsets[1] - 8 + (k.data_offsets[1] - k.data_offsets[0])];
      },
      refusal: /tensors "model\.layers\.0\.self_attn\.q_proj\.weight" and "model\.layers\.0\.self_attn\.k_proj\.weight" overlap/,
    },
  ])('refuses safetensors whose header $lie', async ({ tamper, refusal }) => {
    const { parent, out } = await outParent();
    const dir = await hfDir();
    const weights = join(dir, 'model.safetensors');
    writeFileSync(weights, lyingSafetensors(makeHfTensors(llama), tamper));
    expectOneLineFailure(compile(dir, '--out', out), weights, refusal);
    expectNoPackage(parent, out);
  });

  it('refuses an architecture it does not implement, naming config.json', async () => {
    const { parent, out } = await outParent();
    const dir = await hfDir({ ...toHfConfigJson(llama), architectures: ['GPTNeoXForCausalLM'], model_type: 'gpt_neox' });
    const result = compile(dir, '--out', out);
    expectOneLineFailure(result, join(dir, 'config.json'), /unknown architecture GPTNeoXForCausalLM \(supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM\)$/);
    expectNoPackage(parent, out);
  });

  it('refuses a hidden_size that num_attention_heads does not divide when no head_dim is given', async () => {
    const { parent, out } = await outParent();
    const config: Record<string, unknown> = { ...toHfConfigJson(llama), num_attention_heads: 6, num_key_value_heads: 6 };
    delete config.head_dim;
    const dir = await hfDir(config);
    const result = compile(dir, '--out', out);
    expectOneLineFailure(result, join(dir, 'config.json'), /hidden_size 16 is not divisible by num_attention_heads 6 and config\.json gives no head_dim$/);
    expectNoPackage(parent, out);
  });

  it('refuses a llama2.c checkpoint without --tokenizer', async () => {
    const { parent, out } = await outParent();
    const result = compile(STORIES_260K, '--out', out);
    expectOneLineFailure(result, STORIES_260K, /missing tokenizer: pass --tokenizer <file> for llama2\.c checkpoints$/);
    expectNoPackage(parent, out);
  });

  it('refuses a Hugging Face directory without tokenizer.json', async () => {
    const { parent, out } = await outParent();
    const dir = await hfDir();
    unlinkSync(join(dir, 'tokenizer.json'));
    const result = compile(dir, '--out', out);
    expectOneLineFailure(result, dir, /missing tokenizer: expected tokenizer\.json in /);
    expectNoPackage(parent, out);
  });

  it('refuses an unknown --dtype before reading the checkpoint', async () => {
    const { parent, out } = await outParent();
    const result = compile(STORIES_260K, '--tokenizer', TOK_512, '--dtype', 'q3', '--out', out);
    expectOneLineFailure(result, '"q3"', /unknown dtype "q3" \(use f32, q8, q4\)$/);
    expectNoPackage(parent, out);
  });

  it('refuses a checkpoint path that does not exist', async () => {
    const { parent, out } = await outParent();
    const missing = join(await tempDir(), 'no-such-model.bin');
    const result = compile(missing, '--tokenizer', TOK_512, '--out', out);
    expectOneLineFailure(result, missing, /checkpoint not found$/);
    expectNoPackage(parent, out);
  });
});

describe('infermesh compile --out', () => {
  it('replaces an existing package with the new one and leaves nothing else beside it', async () => {
    const { parent, out } = await outParent();
    const first = compile('synthetic:tiny', '--seed', '1', '--out', out);
    expect(first.status).toBe(0);
    const oldId = JSON.parse(readFileSync(join(out, MANIFEST_FILE), 'utf8')).id as string;

    const second = compile('synthetic:tiny', '--seed', '2', '--out', out);
    expect(second.status).toBe(0);
    const newId = JSON.parse(readFileSync(join(out, MANIFEST_FILE), 'utf8')).id as string;
    expect(newId).not.toBe(oldId);
    expect(second.stderr).toContain(`id ${newId.slice(0, 16)}`);
    expect(readFileSync(join(out, MANIFEST_FILE), 'utf8')).not.toContain(oldId);
    expect(readdirSync(parent)).toEqual(['pkg']);
  });

  it('refuses an --out directory that is not a model package and leaves it untouched', async () => {
    const { parent, out } = await outParent();
    mkdirSync(out);
    writeFileSync(join(out, 'notes.txt'), 'keep me\n');
    const result = compile('synthetic:tiny', '--out', out);
    expectOneLineFailure(result, out, /output path exists and is not a model package; choose another --out$/);
    expect(readdirSync(out)).toEqual(['notes.txt']);
    expect(readFileSync(join(out, 'notes.txt'), 'utf8')).toBe('keep me\n');
    expect(readdirSync(parent)).toEqual(['pkg']);
  });
});
