/**
 * Turns the <checkpoint> argument of `infermesh compile` into a Checkpoint:
 * `synthetic:<preset>`, a Hugging Face directory (config.json + safetensors), or a llama2.c
 * `.bin` file with its `--tokenizer`.
 */
import { stat } from 'node:fs/promises';
import { UsageError } from '../shared/errors.ts';
import type { Checkpoint } from '../shared/model/checkpoint.ts';
import { openHuggingFaceCheckpoint } from '../shared/model/huggingface/hf-checkpoint.ts';
import { openLlama2cCheckpoint } from '../shared/model/llama2c/checkpoint.ts';
import { createSyntheticCheckpoint } from '../shared/model/synthetic/checkpoint.ts';
import { nodeFileOpener, openFileSource } from '../worker/node/node-files.ts';

export const SYNTHETIC_PREFIX = 'synthetic:';

export interface OpenCheckpointOptions {
  tokenizer?: string;
  seed: number;
}

export async function openCheckpoint(spec: string, options: OpenCheckpointOptions): Promise<Checkpoint> {
  if (spec.startsWith(SYNTHETIC_PREFIX)) return createSyntheticCheckpoint(spec.slice(SYNTHETIC_PREFIX.length), options.seed);
  const info = await stat(spec).catch(() => null);
  if (!info) throw new UsageError('checkpoint not found', { source: spec });
  if (info.isDirectory()) return openHuggingFaceCheckpoint(spec, nodeFileOpener);
  const tokenizerPath = options.tokenizer;
  if (tokenizerPath && !(await stat(tokenizerPath).catch(() => null))) throw new UsageError('tokenizer file not found', { source: tokenizerPath });
  const tokenizer = tokenizerPath ? await openFileSource(tokenizerPath) : null;
  return openLlama2cCheckpoint(await openFileSource(spec), tokenizer);
}
