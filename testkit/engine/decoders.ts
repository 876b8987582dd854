/**
 * Greedy decode loops the benchmarks time, isomorphic so the same loops run in Node
 * (bench local, bench engine) and in the Chromium bench page: one through stages (in-process
 * Stages or shard engines in workers), one through a single whole-model graph. Both keep their
 * KV caches the way the engine does (kv-cache.ts / gpu-kv-store.ts), so they differ only in
 * how the layers are split.
 */
import { composedIo } from '../../shared/model/compose.ts';
import type { ModelConfig } from '../../shared/model/config.ts';
import type { EmbeddingTable } from '../../shared/model/embedding.ts';
import type { KvStore, KvStoreFactory } from '../../shared/runtime/kv-cache.ts';
import type { OrtRuntime, OrtSession, OrtTensor } from '../../shared/runtime/ort.ts';
import { createPipeline } from '../../shared/runtime/pipeline.ts';
import type { Pipeline, StageLink } from '../../shared/runtime/pipeline.ts';
import type { Tokenizer } from '../../shared/tokenizer/tokenizer.ts';
import { median as sharedMedian } from '../../shared/statistics.ts';

export const PROMPT_TOKENS = 16;

/** One request's decode loop: `start` ran its prompt; every `step` decodes one greedy token. */
export interface DecodeRun {
  step(): Promise<void>;
  end(): Promise<void>;
}

export interface Decoder {
  /** Runs a 16-token prompt (not timed) and returns the request's decode loop. */
  start(): Promise<DecodeRun>;
}

let requests = 0;
/** Unique across decoders: decoders sharing stages or a pipeline must not share request ids. */
const newRequestId = () => `bench-${++requests}`;

export function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/** Prompt ids that avoid the special tokens (0..2) so no run ends early. */
export function promptIds(vocab: number): number[] {
  return Array.from({ length: PROMPT_TOKENS }, (_, i) => 3 + ((i * 7919) % (vocab - 3)));
}

/**
 * Embedding (a lookup) and head here, blocks in `stages`, hidden states as frames between them
 * (bytes to workers and peers): the grid client's pipeline (shared/runtime/pipeline.ts) over those stages, greedy. Ids
 * are sampled by argmax, so no tokenizer is needed.
 */
export function stagesDecoder(options: { config: ModelConfig; ort: OrtRuntime; embedding: EmbeddingTable; head: OrtSession; stages: StageLink[] }): Decoder {
  const { config, ort, embedding, head, stages } = options;
  return pipelineDecoder(createPipeline({ config, tokenizer: {} as Tokenizer, stopIds: [], embedding, head, stages }, { ort }));
}

/** A Pipeline's own step (shared/runtime/pipeline.ts): the code path of `infermesh generate`, greedy. */
export function pipelineDecoder(pipeline: Pick<Pipeline, 'config' | 'step' | 'end'>): Decoder {
  return {
    async start() {
      const id = newRequestId();
      const prompt = promptIds(pipeline.config.vocabSize);
      let token = argmax(await pipeline.step(id, prompt, 0, 0));
      let n = 0;
      return {
        async step() {
          n++;
          token = argmax(await pipeline.step(id, [token], prompt.length + n - 1, n));
        },
        async end() {
          pipeline.end(id);
        },
      };
    },
  };
}

/**
 * The whole model as one session: input_ids, positions and every layer's cache in, logits and
 * new rows out. `beforeStep` is awaited before each step, as the pipeline's (PipelineDeps).
 */
export function wholeModelDecoder(options: { config: ModelConfig; ort: OrtRuntime; session: OrtSession; kv: KvStoreFactory; beforeStep?: () => Promise<void> }): Decoder {
  const { config, ort, session } = options;
  return {
    async start() {
      const cache: [KvStore, KvStore][] = Array.from({ length: config.nLayers }, () => [options.kv(), options.kv()]);
      const forward = async (tokens: number[], position: number) => {
        await options.beforeStep?.();
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
      let token = argmax(await forward(prompt, 0));
      let position = prompt.length;
      return {
        async step() {
          token = argmax(await forward([token], position++));
        },
        async end() {
          cache.forEach(([k, v]) => (k.dispose(), v.dispose()));
        },
      };
    },
  };
}

/** The benches' median: the upper middle of measured values (shared/statistics.ts). */
export const median = (xs: number[]) => sharedMedian(xs)!;

/**
 * Times decoders against each other on a shared, noisy host. Every decoder first runs a short
 * request to warm up. Then, in each of `rounds` rounds, every decoder starts a request and they
 * take turns token by token, the order rotating at each token: decoders compared this way see
 * the same moments of host load, so a busy second hits them alike. Timed round by round (64
 * tokens of one decoder, then of the next), single-round ratios of identical runs spread over
 * 0.75-1.2 on this 2-vCPU VM; token by token they spread over about 0.9-1.0.
 *
 * A decoder whose threads keep spinning after its step (onnxruntime's default) would slow
 * whichever runs next: pass it in `alone`. Each round then runs it on its own after the others,
 * and a short pause lets its threads park before the next round; its rounds pair with theirs.
 * Returns each decoder's decode-only milliseconds per round.
 */
export async function timeInterleaved(
  runs: Record<string, Decoder>,
  options: { tokens: number; rounds: number; alone?: Record<string, Decoder> },
): Promise<Record<string, number[]>> {
  const names = Object.keys(runs);
  const alone = Object.entries(options.alone ?? {});
  const times: Record<string, number[]> = Object.fromEntries([...names, ...alone.map(([n]) => n)].map((n) => [n, []]));
  for (const decoder of [...Object.values(runs), ...alone.map(([, d]) => d)]) {
    const run = await decoder.start();
    for (let i = 0; i < 4; i++) await run.step();
    await run.end();
  }
  for (let round = 0; round < options.rounds; round++) {
    const live: Record<string, DecodeRun> = {};
    for (const name of names) live[name] = await runs[name].start();
    const ms: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
    for (let token = 0; token < options.tokens; token++) {
      for (let i = 0; i < names.length; i++) {
        const name = names[(round + token + i) % names.length];
        const t = performance.now();
        await live[name].step();
        ms[name] += performance.now() - t;
      }
    }
    for (const name of names) {
      await live[name].end();
      times[name].push(ms[name]);
    }
    for (const [name, decoder] of alone) {
      const run = await decoder.start();
      const t = performance.now();
      for (let token = 0; token < options.tokens; token++) await run.step();
      times[name].push(performance.now() - t);
      await run.end();
      await new Promise((resolve) => setTimeout(resolve, SPIN_PARK_MS));
    }
  }
  return times;
}

/** Long enough for onnxruntime's spinning threads to give up and park: ~40 ms after a run on 2 vCPUs. */
const SPIN_PARK_MS = 100;

export function speed(times: number[], tokens: number) {
  const ms = median(times) / tokens;
  return { tokensPerSecond: +(1000 / ms).toFixed(2), msPerToken: +ms.toFixed(3) };
}

/** Median of per-round ratios baseline-time / time (paired within a round), with the spread. */
export function pairedRatio(times: number[], baseline: number[]) {
  const ratios = times.map((ms, round) => baseline[round] / ms);
  return { median: +median(ratios).toFixed(4), min: +Math.min(...ratios).toFixed(4), max: +Math.max(...ratios).toFixed(4) };
}
