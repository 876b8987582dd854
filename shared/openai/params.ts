/**
 * Checks the sampling parameters of an OpenAI request (types.ts SamplingParams) and turns them
 * into what the pipeline's generate() takes. Every refusal is a UsageError whose `source` is
 * the parameter's name, so the gateway can report it as OpenAI's `param`. Used by completions.ts.
 */
import { UsageError } from '../errors.ts';

/** The sampling half of a request, checked; maxTokens undefined = until a stop or the context ends. */
export interface SamplingRequest {
  maxTokens?: number;
  temperature: number;
  topP: number;
  seed: number;
  stop: string[];
  stream: boolean;
  includeUsage: boolean;
  signal?: AbortSignal;
}

/** OpenAI allows at most 4 stop sequences. */
const MAX_STOP_SEQUENCES = 4;

export function requireObject(value: unknown): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new UsageError(`must be a JSON object of parameters, got ${describeValue(value)}`, { source: 'request' });
  }
  return value as Record<string, unknown>;
}

export function parseSamplingParams(p: Record<string, unknown>, deps: { randomSeed: () => number }): SamplingRequest {
  const maxTokens = optionalNumber(p, 'max_completion_tokens', { min: 1, integer: true }) ?? optionalNumber(p, 'max_tokens', { min: 1, integer: true });
  let temperature = optionalNumber(p, 'temperature', { min: 0, max: 2 }) ?? 1;
  const topP = optionalNumber(p, 'top_p', { min: 0, max: 1 }) ?? 1;
  // The sampler reads top_p 0 as "off"; OpenAI's meaning is the smallest nucleus, one token: greedy.
  if (topP === 0) temperature = 0;
  const n = optionalNumber(p, 'n', { min: 1, integer: true });
  if (n !== undefined && n !== 1) throw new UsageError(`only 1 choice per request is supported, got ${n}`, { source: 'n' });
  const seed = optionalNumber(p, 'seed', { integer: true }) ?? deps.randomSeed();
  // xorshift maps a zero state to zero forever, so the sampler refuses it.
  if (seed === 0) throw new UsageError('must be a non-zero integer', { source: 'seed' });
  const stream = optionalBoolean(p, 'stream') ?? false;
  const streamOptions = p.stream_options;
  if (streamOptions !== undefined && streamOptions !== null && (typeof streamOptions !== 'object' || Array.isArray(streamOptions))) {
    throw new UsageError(`must be an object, got ${describeValue(streamOptions)}`, { source: 'stream_options' });
  }
  const includeUsage = optionalBoolean((streamOptions ?? {}) as Record<string, unknown>, 'include_usage', 'stream_options.include_usage') ?? false;
  const signal = p.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new UsageError(`must be an AbortSignal, got ${describeValue(signal)}`, { source: 'signal' });
  return { maxTokens, temperature, topP, seed, stop: parseStop(p.stop), stream, includeUsage, signal };
}

function parseStop(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || list.some((s) => typeof s !== 'string')) {
    throw new UsageError(`must be a string or an array of strings, got ${describeValue(value)}`, { source: 'stop' });
  }
  if (list.length > MAX_STOP_SEQUENCES) throw new UsageError(`at most ${MAX_STOP_SEQUENCES} sequences, got ${list.length}`, { source: 'stop' });
  if (list.some((s) => s === '')) throw new UsageError('sequences must not be empty', { source: 'stop' });
  return list as string[];
}

function optionalNumber(p: Record<string, unknown>, name: string, range: { min?: number; max?: number; integer?: boolean }): number | undefined {
  const v = p[name];
  if (v === undefined || v === null) return undefined;
  const { min, max, integer } = range;
  const kind = integer ? 'an integer' : 'a number';
  const bounds = min !== undefined && max !== undefined ? ` from ${min} to ${max}` : min !== undefined ? ` ≥ ${min}` : '';
  const ok = typeof v === 'number' && (integer ? Number.isSafeInteger(v) : Number.isFinite(v)) && (min === undefined || v >= min) && (max === undefined || v <= max);
  if (!ok) throw new UsageError(`must be ${kind}${bounds}, got ${describeValue(v)}`, { source: name });
  return v as number;
}

function optionalBoolean(p: Record<string, unknown>, name: string, field = name): boolean | undefined {
  const v = p[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw new UsageError(`must be true or false, got ${describeValue(v)}`, { source: field });
  return v;
}

/** A short description of a bad value for an error message (never the whole of a long string). */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${String(value)}`;
}
