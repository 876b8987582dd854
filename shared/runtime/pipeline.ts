/**
 * Generation through a chain of stages, as a grid client does it: embed locally (a table
 * lookup), send the hidden state through each stage as a frame, run the head locally on the
 * last row, sample, repeat. On the grid and to workers the frames cross as bytes; between
 * in-process stages, and to and from a route link, they pass decoded. A frame is converted
 * only when the next stage needs the other form (decoded, encoded).
 */
import { UsageError } from '../errors.ts';
import type { ModelConfig } from '../model/config.ts';
import { HEAD_IO } from '../model/graphs/embed-head.ts';
import type { EmbeddingTable } from '../model/embedding.ts';
import { decodeFrame, encodeFrame, FrameError } from '../protocol/frame.ts';
import type { HiddenFrame } from '../protocol/frame.ts';
import type { Tokenizer } from '../tokenizer/tokenizer.ts';
import type { OrtRuntime, OrtSession } from './ort.ts';
import { createSampler } from './sampler.ts';
import type { Stage } from './stage.ts';

/** What the pipeline needs of a stage: an in-process Stage, or a shard engine in a worker or across the grid. */
export interface StageLink {
  forward(frame: Uint8Array): Promise<Uint8Array>;
  /**
   * the same step on a frame as the pipeline holds it, answered in the same form: an in-process
   * stage skips encoding and parsing; a route link (shared/grid/route-link.ts) encodes once and
   * hands back the result it parsed on arrival, so no one parses a frame twice
   */
  forwardFrame?(frame: HiddenFrame): Promise<HiddenFrame>;
  end(requestId: string): unknown;
}

/** A frame in whichever form the last stage returned it, converted only when the next needs the other. */
const decoded = (frame: HiddenFrame | Uint8Array) => (frame instanceof Uint8Array ? decodeFrame(frame) : frame);
const encoded = (frame: HiddenFrame | Uint8Array) => (frame instanceof Uint8Array ? frame : encodeFrame(frame));

/** A shard engine (shared/engine/api.ts) as a pipeline stage. */
export function engineStage(engine: { step(frame: Uint8Array): Promise<Uint8Array>; end(requestId: string): Promise<void> }): StageLink {
  return { forward: (frame) => engine.step(frame), end: (id) => engine.end(id) };
}

export interface GenerateOptions {
  /** completion tokens at most (the prompt does not count) */
  maxTokens: number;
  /** 0 = greedy */
  temperature: number;
  topP: number;
  seed: number;
  signal?: AbortSignal;
  /** the id the stages know this request by (default: a new one from newRequestId) */
  requestId?: string;
}

export interface GeneratedToken {
  /** the sampled token; null for the trailing text of an unfinished character at the end */
  id: number | null;
  /** text this token completes (may be empty while a multi-byte character is split) */
  text: string;
  /** on the grid: how many times the request's route was replaced so far (a stage left, stalled or slowed down) */
  recoveries?: number;
}

export interface Pipeline {
  readonly config: ModelConfig;
  readonly tokenizer: Tokenizer;
  generate(prompt: string, options: GenerateOptions): AsyncGenerator<GeneratedToken, void, void>;
  /** Runs tokens at `position` for a request and returns the logits of the last one. */
  step(requestId: string, tokens: number[], position: number, step: number): Promise<Float32Array>;
  end(requestId: string): void;
}

export interface PipelineOptions {
  config: ModelConfig;
  tokenizer: Tokenizer;
  /** Token ids that end a completion (EOS; llama2.c story models end with BOS). */
  stopIds: number[];
  /** the client's embedding lookup (shared/model/embedding.ts) */
  embedding: EmbeddingTable;
  /** the client's head session, or HEAD_IN_LAST_STAGE when the last stage returns logits */
  head: OrtSession | typeof HEAD_IN_LAST_STAGE;
  stages: (Stage | StageLink)[];
  /** Request ids: stages on a grid key caches by them, so grid clients pass random ones. */
  newRequestId?: () => string;
}

/**
 * The last stage runs the head itself (a stage session composed with it, in process) and
 * returns the logits of the frame's last row, [1, 1, vocab], instead of hidden states.
 */
export const HEAD_IN_LAST_STAGE = 'in-last-stage';

export interface PipelineDeps {
  ort: OrtRuntime;
  /**
   * Awaited before each step. Stages whose runs never wait for the event loop (inline
   * sessions, worker/node/inline-session.ts) would otherwise hold it for a whole generation: a server
   * embedding the pipeline could not even see its client go away. The local runner passes one
   * turn of the event loop, once per token where the public session API takes one per run.
   */
  beforeStep?: () => Promise<void>;
}

export function createPipeline(options: PipelineOptions, deps: PipelineDeps): Pipeline {
  const { config, tokenizer, embedding, head, stages } = options;
  const { Tensor } = deps.ort;
  const stop = new Set(options.stopIds);
  let requestCounter = 0;
  const newRequestId = options.newRequestId ?? (() => `local-${++requestCounter}`);

  const step: Pipeline['step'] = async (requestId, tokens, position, stepIndex) => {
    await deps.beforeStep?.();
    let frame: HiddenFrame | Uint8Array = { requestId, step: stepIndex, position, dims: [1, tokens.length, config.dim], data: embedding.lookup(tokens) };
    for (const stage of stages) frame = stage.forwardFrame ? await stage.forwardFrame(decoded(frame)) : await stage.forward(encoded(frame));
    const out = decoded(frame);
    if (head === HEAD_IN_LAST_STAGE) {
      const [batch, rows, vocab] = out.dims;
      if (out.dims.length !== 3 || batch !== 1 || rows !== 1 || vocab !== config.vocabSize) {
        throw new FrameError(`the last stage should return logits [1, 1, ${config.vocabSize}], got [${out.dims}]`);
      }
      return out.data;
    }
    const hidden = out.data;
    // Only the last row's logits are sampled: the head skips the rest of a prefill.
    const last = hidden.subarray((tokens.length - 1) * config.dim);
    const logits = (await head.run({ [HEAD_IO.hidden]: new Tensor('float32', last, [1, 1, config.dim]) }))[HEAD_IO.logits];
    return logits.data as Float32Array;
  };

  const end = (requestId: string) => {
    // Best effort: a stage that cannot end a request (gone, reloaded) drops it on its own idle timeout.
    for (const stage of stages) Promise.resolve(stage.end(requestId)).catch(() => undefined);
  };

  return {
    config,
    tokenizer,
    step,
    end,
    async *generate(prompt, opts) {
      if (!Number.isInteger(opts.maxTokens) || opts.maxTokens < 1) throw new UsageError(`max tokens must be a positive integer, got ${opts.maxTokens}`);
      const promptTokens = tokenizer.encode(prompt);
      if (promptTokens.length === 0) throw new UsageError('the prompt encodes to no tokens and the tokenizer adds no BOS; give a prompt');
      if (promptTokens.length >= config.maxSeqLen) {
        throw new UsageError(`prompt is ${promptTokens.length} tokens but the model's context is ${config.maxSeqLen}`);
      }
      const sampler = createSampler({ vocabSize: config.vocabSize, temperature: opts.temperature, topP: opts.topP, seed: opts.seed });
      const decoder = tokenizer.createStreamDecoder();
      const requestId = opts.requestId ?? newRequestId();
      try {
        let logits = await step(requestId, promptTokens, 0, 0);
        let position = promptTokens.length;
        let prev = promptTokens[promptTokens.length - 1];
        for (let n = 0; n < opts.maxTokens; n++) {
          opts.signal?.throwIfAborted();
          const next = sampler.sample(logits);
          if (stop.has(next)) break;
          yield { id: next, text: decoder.push(prev, next) };
          prev = next;
          if (n + 1 === opts.maxTokens || position >= config.maxSeqLen) break;
          logits = await step(requestId, [next], position, n + 1);
          position += 1;
        }
        const rest = decoder.flush();
        if (rest) yield { id: null, text: rest };
      } finally {
        end(requestId);
      }
    },
  };
}
