/**
 * The reference a grid's output is held to: the local runner's token ids (`infermesh generate`'s
 * path, one in-process stage) for a prompt, and the ids of any generation, for comparing.
 */
import { openLocalPipeline } from '../worker/node/local-package.ts';
import type { GenerateOptions } from '../shared/runtime/pipeline.ts';

/** The ids a generation yields (its text pieces left out). */
export async function tokenIds(tokens: AsyncIterable<{ id: number | null }>): Promise<number[]> {
  const ids: number[] = [];
  for await (const t of tokens) if (t.id !== null) ids.push(t.id);
  return ids;
}

/** The local runner's ids for `prompt` from the package in `dir`. */
export async function localTokenIds(dir: string, prompt: string, options: GenerateOptions): Promise<number[]> {
  const local = await openLocalPipeline(dir, { stages: 1 });
  try {
    return await tokenIds(local.pipeline.generate(prompt, options));
  } finally {
    await local.release();
  }
}
