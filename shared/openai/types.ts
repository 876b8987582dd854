/**
 * OpenAI's chat and text completion shapes, as far as infermesh produces them: what
 * createOpenAIApi (completions.ts) accepts and returns, and what the server's gateway puts on
 * the wire, so an OpenAI SDK pointed at either reads them unchanged.
 */
import type { ChatMessage } from './chat-template.ts';

export type FinishReason = 'stop' | 'length';

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** Parameters both endpoints share. Unknown parameters are ignored, as OpenAI-compatible servers do. */
export interface SamplingParams {
  /** Routes a request on the gateway; createOpenAIApi serves one model and reports its own id. */
  model?: string;
  max_tokens?: number | null;
  /** OpenAI's newer name for max_tokens; wins when both are given. */
  max_completion_tokens?: number | null;
  /** 0..2, default 1; 0 is greedy. */
  temperature?: number | null;
  /** 0..1, default 1 (off); 0 keeps only the most likely token, i.e. greedy. */
  top_p?: number | null;
  /** Non-zero integer (the sampler's xorshift state); omitted: a random seed per request. */
  seed?: number | null;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean } | null;
  /** Only 1 is supported. */
  n?: number | null;
  /** Up to 4 strings; generation ends before the first one and the text excludes it. */
  stop?: string | string[] | null;
  signal?: AbortSignal;
}

export interface ChatCompletionCreateParams extends SamplingParams {
  messages: ChatMessage[];
}

export interface CompletionCreateParams extends SamplingParams {
  /** A string, or an array holding exactly one string. */
  prompt: string | [string];
}

export interface RequestOptions {
  /** Aborts generation; wins over params.signal. */
  signal?: AbortSignal;
}

/**
 * infermesh's own field on a response and on a stream's finishing chunk: how many times the
 * request's route lost a stage and was replaced mid-generation (the text is the same either way).
 * The HTTP gateway sends it as the `x-infermesh-recoveries` header too (not on a stream: its
 * headers go out before the first token).
 */
export interface InfermeshFields {
  recoveries: number;
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: {
    index: number;
    message: { role: 'assistant'; content: string; refusal: null };
    logprobs: null;
    finish_reason: FinishReason;
  }[];
  usage: Usage;
  infermesh?: InfermeshFields;
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  /** Empty in the trailing usage chunk (stream_options.include_usage). */
  choices: {
    index: number;
    delta: { role?: 'assistant'; content?: string };
    logprobs: null;
    finish_reason: FinishReason | null;
  }[];
  usage?: Usage;
  /** on the chunk that finishes the choice */
  infermesh?: InfermeshFields;
}

/** A text completion, and also each chunk of a streamed one (finish_reason null until the last). */
export interface Completion {
  id: string;
  object: 'text_completion';
  created: number;
  model: string;
  choices: { index: number; text: string; logprobs: null; finish_reason: FinishReason | null }[];
  usage?: Usage;
  /** on the response, and on the chunk that finishes a stream */
  infermesh?: InfermeshFields;
}

export interface ChatCompletionsApi {
  create(params: ChatCompletionCreateParams & { stream: true }, options?: RequestOptions): Promise<AsyncIterable<ChatCompletionChunk>>;
  create(params: ChatCompletionCreateParams & { stream?: false | null }, options?: RequestOptions): Promise<ChatCompletion>;
  create(params: ChatCompletionCreateParams, options?: RequestOptions): Promise<ChatCompletion | AsyncIterable<ChatCompletionChunk>>;
}

export interface CompletionsApi {
  create(params: CompletionCreateParams & { stream: true }, options?: RequestOptions): Promise<AsyncIterable<Completion>>;
  create(params: CompletionCreateParams & { stream?: false | null }, options?: RequestOptions): Promise<Completion>;
  create(params: CompletionCreateParams, options?: RequestOptions): Promise<Completion | AsyncIterable<Completion>>;
}

export interface OpenAIApi {
  readonly modelId: string;
  chat: { completions: ChatCompletionsApi };
  completions: CompletionsApi;
}
