/**
 * Greedy decode loops the benchmarks time, isomorphic so the same loops run in Node
 * (bench local, bench engine) and in the Chromium bench page: one through stages (in-process
 * Stages or shard engines in workers), one through a single whole-model graph. Both keep their
 * KV caches the way the engine does (kv-cache.ts / gpu-kv-store.ts), so they differ only in
 * how the layers are split.
 */
import { composedIo } from '../shared/model/compose.ts';
import type { ModelConfig } from '../shared/model/config.ts';
import { HEAD_IO } from '../shared/model/graphs/embed-head.ts';
import type { EmbeddingTable } from '../shared/model/embedding.ts';
import { decodeFrame, encodeFrame } from '../shared/protocol/frame.ts';
import type { KvStore, KvStoreFactory } from '../shared/runtime/kv-cache.ts';
import type { OrtRuntime, OrtSession, OrtTensor } from '../shared/runtime/ort.ts';
import type { StageLink } from '../shared/runtime/pipeline.ts';
import { median as sharedMedian } from '../shared/statistics.ts';

export const PROMPT_TOKENS = 16;

export interface Decoder {
  /** Runs a 16-token prompt then `steps` greedy decode steps; returns decode-only milliseconds. */
  run(steps: number): Promise<number>;
}

export function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/** Prompt ids that avoid the special tokens (0..2) so no run ends early. */
export function promptIds(vocab: number): number[] {
  return Array.from({ length: PROMPT_TOKENS }, (_, i) => 3 + ((i * 7919) % (vocab - 3)));
}

/** Embedding (a lookup) and head here, blocks in `stages`, hidden states as binary frames between them. */
export function stagesDecoder(options: { config: ModelConfig; ort: OrtRuntime; embedding: EmbeddingTable; head: OrtSession; stages: StageLink[] }): Decoder {
  const { config, ort, embedding, head, stages } = options;
  let request = 0;
  const step = async (id: string, tokens: number[], position: number, n: number) => {
    let frame = encodeFrame({ requestId: id, step: n, position, dims: [1, tokens.length, config.dim], data: embedding.lookup(tokens) });
    for (const s of stages) frame = await s.forward(frame);
    const last = decodeFrame(frame).data.subarray((tokens.length - 1) * config.dim);
    return (await head.run({ [HEAD_IO.hidden]: new ort.Tensor('float32', last, [1, 1, config.dim]) }))[HEAD_IO.logits].data as Float32Array;
  };
  return {
    async run(steps) {
      const id = `bench-${++request}`;
      const prompt = promptIds(config.vocabSize);
      let token = argmax(await step(id, prompt, 0, 0));
      const t = performance.now();
      for (let i = 0; i < steps; i++) token = argmax(await step(id, [token], prompt.length + i, i + 1));
      const ms = performance.now() - t;
      await Promise.all(stages.map((s) => s.end(id)));
      return ms;
    },
  };
}

/** The whole model as one session: input_ids, positions and every layer's cache in, logits and new rows out. */
export function wholeModelDecoder(options: { config: ModelConfig; ort: OrtRuntime; session: OrtSession; kv: KvStoreFactory }): Decoder {
  const { config, ort, session } = options;
  return {
    async run(steps) {
      const cache: [KvStore, KvStore][] = Array.from({ length: config.nLayers }, () => [options.kv(), options.kv()]);
      const step = async (tokens: number[], position: number) => {
        const feeds: Record<string, OrtTensor> = {
          [composedIo.inputIds]: new ort.Tensor('int64', BigInt64Array.from(tokens, BigInt), [1, tokens.length]),
          [composedIo.positions]: new ort.Tensor('int64', BigInt64Array.from(tokens, (_, i) => BigInt(position + i)), [1, tokens.length]),
        };
        cache.forEach(([k, v], i) => {
          feeds[composedIo.pastKey(i)] = k.tensor();
          feeds[composedIo.pastValue(i)] = v.tensor();
        });
        const out = await session.run(feeds);
        cache.forEach(([k, v], i) => {
          k.append(out[composedIo.newKey(i)]);
          v.append(out[composedIo.newValue(i)]);
        });
        const logits = out[composedIo.logits].data as Float32Array;
        return logits.subarray((tokens.length - 1) * config.vocabSize);
      };
      const prompt = promptIds(config.vocabSize);
      let token = argmax(await step(prompt, 0));
      const t = performance.now();
      for (let i = 0; i < steps; i++) token = argmax(await step([token], prompt.length + i));
      const ms = performance.now() - t;
      cache.forEach(([k, v]) => (k.dispose(), v.dispose()));
      return ms;
    },
  };
}

/** The benches' median: the upper middle of measured values (shared/statistics.ts). */
export const median = (xs: number[]) => sharedMedian(xs)!;

/**
 * Runs every decoder once to warm up, then `rounds` rounds of `tokens` steps each, every round
 * starting at a different decoder: of two identical sessions alternating, the second ran 5-8%
 * faster here, so a fixed order would bias a comparison by as much as it measures.
 */
export async function timeInterleaved(runs: Record<string, Decoder>, options: { tokens: number; rounds: number }): Promise<Record<string, number[]>> {
  const names = Object.keys(runs);
  const times: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  for (const name of names) await runs[name].run(4);
  for (let round = 0; round < options.rounds; round++) {
    for (let i = 0; i < names.length; i++) {
      const name = names[(round + i) % names.length];
      times[name].push(await runs[name].run(options.tokens));
    }
  }
  return times;
}

export function speed(times: number[], tokens: number) {
  const ms = median(times) / tokens;
  return { tokensPerSecond: +(1000 / ms).toFixed(2), msPerToken: +ms.toFixed(3) };
}

/** Median of per-round ratios baseline-time / time (paired within a round), with the spread. */
export function pairedRatio(times: number[], baseline: number[]) {
  const ratios = times.map((ms, round) => baseline[round] / ms);
  return { median: +median(ratios).toFixed(4), min: +Math.min(...ratios).toFixed(4), max: +Math.max(...ratios).toFixed(4) };
}
