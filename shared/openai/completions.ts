/**
 * OpenAI's chat and text completion API over any token generator: the local pipeline, a grid
 * client's route, or a test's script. The SDK hands it to users as `client.chat.completions
 * .create(...)`; the server's gateway (signaling-server/http/openai-gateway.ts) puts it on
 * HTTP. One model per instance; `params.model` is for routing and is not checked here.
 *
 * Decisions a reader should know:
 *  - max_tokens defaults to the rest of the context for chat and to 16 for text completions
 *    (OpenAI's defaults); a larger value is clipped to the context rather than refused, so
 *    clients written for big models still work on small ones, and then finish with 'length'.
 *  - finish_reason is 'length' when the token budget ran out, 'stop' otherwise (the model
 *    ended its text, or a stop sequence was reached).
 *  - usage counts the prompt as the model sees it (BOS included) and every sampled token,
 *    including those whose text a stop sequence cut off.
 */
import { UsageError } from '../errors.ts';
import type { GenerateOptions, GeneratedToken } from '../runtime/pipeline.ts';
import { parseChatMessages, type ChatRenderer } from './chat-template.ts';
import { describeValue, parseSamplingParams, requireObject, type SamplingRequest } from './params.ts';
import { createStopMatcher } from './stop-sequences.ts';
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionCreateParams,
  ChatCompletionsApi,
  Completion,
  CompletionCreateParams,
  CompletionsApi,
  FinishReason,
  OpenAIApi,
  RequestOptions,
  Usage,
} from './types.ts';

export interface OpenAIApiOptions {
  /** Reported as `model` in every response. */
  modelId: string;
  /** Pipeline.generate or anything with its contract (shared/runtime/pipeline.ts). */
  generate(prompt: string, options: GenerateOptions): AsyncIterable<GeneratedToken>;
  /** Prompt tokens as the model sees them (the tokenizer's encode(text).length). */
  countTokens(text: string): number | Promise<number>;
  renderChat: ChatRenderer;
  /** The model's context in tokens (manifest config.maxSeqLen); unknown: no clipping, no check. */
  contextLength?: number;
  /** The tokenizer's maxPieceChars: with contextLength, bounds a prompt's length before it is encoded. */
  maxPieceChars?: number;
}

/**
 * Slack over contextLength × maxPieceChars before a prompt is refused unencoded: normalizers
 * (NFC, NFKC) can fold a few characters into one, so a prompt may be somewhat longer than its
 * tokens' pieces. Only the pathological prompts (a megabyte for a 512-token model) are refused
 * here; the exact check after encoding refuses the rest.
 */
const PROMPT_CHARS_SLACK = 4;

export interface OpenAIApiDeps {
  /** milliseconds since the epoch, for `created` */
  now?: () => number;
  /** a unique suffix for response ids */
  newId?: () => string;
  /** the seed of a request that gives none; must not return 0 */
  randomSeed?: () => number;
}

/** OpenAI's default max_tokens for /v1/completions. */
const TEXT_COMPLETION_DEFAULT_MAX_TOKENS = 16;

interface Generation {
  prompt: string;
  promptTokens: number;
  maxTokens: number;
  sampling: SamplingRequest;
  signal?: AbortSignal;
}

interface Finish {
  reason: FinishReason;
  completionTokens: number;
  /** route recoveries the generation took (GeneratedToken.recoveries, on the grid) */
  recoveries: number;
}

export function createOpenAIApi(options: OpenAIApiOptions, deps: OpenAIApiDeps = {}): OpenAIApi {
  const { modelId, generate, countTokens, renderChat, contextLength, maxPieceChars } = options;
  const maxPromptChars = contextLength !== undefined && maxPieceChars !== undefined ? PROMPT_CHARS_SLACK * maxPieceChars * contextLength : Infinity;
  const now = deps.now ?? Date.now;
  const newId = deps.newId ?? (() => crypto.randomUUID().replaceAll('-', ''));
  const randomSeed = deps.randomSeed ?? (() => crypto.getRandomValues(new Uint32Array(1))[0] || 1);

  /** Checks a request and counts its prompt before anything runs, so bad requests fail at create(). */
  async function prepare(p: Record<string, unknown>, prompt: string, promptField: string, defaultMax: number | undefined, requestOptions?: RequestOptions): Promise<Generation> {
    const sampling = parseSamplingParams(p, { randomSeed });
    // Encoding a megabyte takes the tokenizer seconds, on the thread that serves everyone else.
    if (prompt.length > maxPromptChars) {
      throw new UsageError(`is ${prompt.length} characters long; a prompt for the model's context of ${contextLength} tokens has at most ${maxPromptChars}`, { source: promptField });
    }
    const promptTokens = await countTokens(prompt);
    if (promptTokens === 0) throw new UsageError('encodes to no tokens; give some text', { source: promptField });
    let maxTokens = sampling.maxTokens ?? defaultMax ?? Number.MAX_SAFE_INTEGER;
    if (contextLength !== undefined) {
      if (promptTokens >= contextLength) {
        throw new UsageError(`the prompt is ${promptTokens} tokens but the model's context is ${contextLength}`, { source: promptField });
      }
      maxTokens = Math.min(maxTokens, contextLength - promptTokens);
    }
    return { prompt, promptTokens, maxTokens, sampling, signal: requestOptions?.signal ?? sampling.signal };
  }

  /** The completion's text pieces; returns why it ended. Ending the iteration early ends generation. */
  async function* pieces(g: Generation): AsyncGenerator<string, Finish> {
    const stop = createStopMatcher(g.sampling.stop);
    const { temperature, topP, seed } = g.sampling;
    let completionTokens = 0;
    let recoveries = 0;
    for await (const token of generate(g.prompt, { maxTokens: g.maxTokens, temperature, topP, seed, signal: g.signal })) {
      if (token.id !== null) completionTokens++;
      recoveries = Math.max(recoveries, token.recoveries ?? 0);
      const { text, stopped } = stop.push(token.text);
      if (text) yield text;
      if (stopped) return { reason: 'stop', completionTokens, recoveries };
    }
    const rest = stop.flush();
    if (rest) yield rest;
    return { reason: completionTokens >= g.maxTokens ? 'length' : 'stop', completionTokens, recoveries };
  }

  async function collect(g: Generation): Promise<{ text: string; finish: Finish }> {
    const it = pieces(g);
    let text = '';
    for (let r = await it.next(); ; r = await it.next()) {
      if (r.done) return { text, finish: r.value };
      text += r.value;
    }
  }

  const usageOf = (g: Generation, f: Finish): Usage => ({
    prompt_tokens: g.promptTokens,
    completion_tokens: f.completionTokens,
    total_tokens: g.promptTokens + f.completionTokens,
  });
  const created = () => Math.floor(now() / 1000);
  /** The fields every response and every chunk of one starts with. */
  const envelope = <Kind extends string>(id: string, object: Kind, createdAt: number) => ({ id, object, created: createdAt, model: modelId });

  async function createChat(params: ChatCompletionCreateParams, requestOptions?: RequestOptions): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>> {
    const p = requireObject(params);
    // Every message takes at least one token of the context (its role's markers, its text).
    const prompt = renderChat(parseChatMessages(p.messages, 'messages', contextLength));
    const g = await prepare(p, prompt, 'messages', undefined, requestOptions);
    const id = `chatcmpl-${newId()}`;
    if (g.sampling.stream) return chatChunks(g, id, created());
    const { text, finish } = await collect(g);
    return {
      ...envelope(id, 'chat.completion', created()),
      choices: [{ index: 0, message: { role: 'assistant', content: text, refusal: null }, logprobs: null, finish_reason: finish.reason }],
      usage: usageOf(g, finish),
      infermesh: { recoveries: finish.recoveries },
    };
  }

  async function* chatChunks(g: Generation, id: string, createdAt: number): AsyncGenerator<ChatCompletionChunk> {
    const chunk = (delta: ChatCompletionChunk['choices'][0]['delta'], finish: FinishReason | null): ChatCompletionChunk => ({
      ...envelope(id, 'chat.completion.chunk', createdAt),
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    });
    yield chunk({ role: 'assistant', content: '' }, null);
    const it = pieces(g);
    try {
      let r = await it.next();
      for (; !r.done; r = await it.next()) yield chunk({ content: r.value }, null);
      yield { ...chunk({}, r.value.reason), infermesh: { recoveries: r.value.recoveries } };
      if (g.sampling.includeUsage) yield { ...envelope(id, 'chat.completion.chunk', createdAt), choices: [], usage: usageOf(g, r.value) };
    } finally {
      // A consumer that stops reading (a client gone) must stop the generator, and with it the model.
      await it.return(undefined as never);
    }
  }

  async function createText(params: CompletionCreateParams, requestOptions?: RequestOptions): Promise<Completion | AsyncIterable<Completion>> {
    const p = requireObject(params);
    const prompt = parsePrompt(p.prompt);
    const g = await prepare(p, prompt, 'prompt', TEXT_COMPLETION_DEFAULT_MAX_TOKENS, requestOptions);
    const id = `cmpl-${newId()}`;
    if (g.sampling.stream) return textChunks(g, id, created());
    const { text, finish } = await collect(g);
    return {
      ...envelope(id, 'text_completion', created()),
      choices: [{ index: 0, text, logprobs: null, finish_reason: finish.reason }],
      usage: usageOf(g, finish),
      infermesh: { recoveries: finish.recoveries },
    };
  }

  async function* textChunks(g: Generation, id: string, createdAt: number): AsyncGenerator<Completion> {
    const chunk = (text: string, finish: FinishReason | null): Completion => ({
      ...envelope(id, 'text_completion', createdAt),
      choices: [{ index: 0, text, logprobs: null, finish_reason: finish }],
    });
    const it = pieces(g);
    try {
      let r = await it.next();
      for (; !r.done; r = await it.next()) yield chunk(r.value, null);
      yield { ...chunk('', r.value.reason), infermesh: { recoveries: r.value.recoveries } };
      if (g.sampling.includeUsage) yield { ...envelope(id, 'text_completion', createdAt), choices: [], usage: usageOf(g, r.value) };
    } finally {
      await it.return(undefined as never);
    }
  }

  return {
    modelId,
    chat: { completions: { create: createChat as ChatCompletionsApi['create'] } },
    completions: { create: createText as CompletionsApi['create'] },
  };
}

export function parsePrompt(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value) && value.length === 1 && typeof value[0] === 'string') return value[0];
  throw new UsageError(`must be a string (or an array of one string), got ${describeValue(value)}`, { source: 'prompt' });
}
