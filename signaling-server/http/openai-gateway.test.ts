/**
 * The OpenAI-compatible gateway over a real model: stories260K compiled into a package and run
 * by the local pipeline, behind a real HTTP server, read with plain fetch and a hand-written SSE
 * parser (what any OpenAI client does on the wire).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { openCheckpoint } from '../../cli/open-checkpoint.ts';
import { openLocalPipeline } from '../../worker/node/local-package.ts';
import { compileTo, removeTempDirs, REPO_ROOT, STORIES_260K, TOK_512 } from '../../testkit/model-fixtures.ts';
import { createChatRenderer } from '../../shared/openai/chat-template.ts';
import { createOpenAIApi } from '../../shared/openai/completions.ts';
import type { ChatCompletion, ChatCompletionChunk, Completion } from '../../shared/openai/types.ts';
import type { GenerateOptions, Pipeline } from '../../shared/runtime/pipeline.ts';
import { createOpenAIGateway } from './openai-gateway.ts';
import { startHttpServer, type HttpServer } from './server.ts';

const MODEL = 'stories260K';
const fixture = JSON.parse(readFileSync(join(REPO_ROOT, 'shared/model/llama2c/fixtures/stories260K-reference.json'), 'utf8')) as { runs: { name: string; text: string }[] };

let server: HttpServer;
let pipeline: Pipeline;
let release: () => Promise<void>;
let contextLength: number;
/** Generations that have started and not yet ended, and the tokens each produced: the model's side of a disconnect. */
const generations: { tokens: number; ended: boolean }[] = [];

async function* tracked(prompt: string, options: GenerateOptions) {
  const g = { tokens: 0, ended: false };
  generations.push(g);
  try {
    for await (const t of pipeline.generate(prompt, options)) {
      g.tokens++;
      yield t;
    }
  } finally {
    g.ended = true;
  }
}

beforeAll(async () => {
  const { dir } = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'f32');
  const local = await openLocalPipeline(dir, { stages: 2 });
  pipeline = local.pipeline;
  release = local.release;
  contextLength = local.manifest.config.maxSeqLen;
  const api = createOpenAIApi({
    modelId: MODEL,
    generate: tracked,
    countTokens: (text) => pipeline.tokenizer.encode(text).length,
    renderChat: createChatRenderer(undefined),
    contextLength,
  });
  const gateway = createOpenAIGateway({
    models: () => [{ id: MODEL, name: 'stories260K (llama2.c)', contextLength }],
    apiFor: (id) => (id === MODEL ? api : undefined),
  });
  server = await startHttpServer({ host: '127.0.0.1', port: 0, api: gateway });
});
afterAll(async () => {
  await server?.close();
  await release?.();
  await removeTempDirs();
});

const post = (path: string, body: unknown, init: RequestInit = {}) =>
  fetch(new URL(path, server.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), ...init });

/** Reads an SSE body event by event: the `data:` payloads, in order. */
async function* sseEvents(res: Response): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const bytes of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(bytes, { stream: true });
    for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      yield event
        .split('\n')
        .filter((line) => line.startsWith('data: '))
        .map((line) => line.slice('data: '.length))
        .join('\n');
    }
  }
  expect(buffer).toBe('');
}

const story = [{ role: 'user', content: 'Tell me a story about Lily.' }];

describe('POST /v1/chat/completions', () => {
  it('streams chat.completion.chunk events: the role, content deltas, finish_reason, usage, then [DONE]; the text is the non-streamed reply', async () => {
    const request = { model: MODEL, messages: story, temperature: 0, max_tokens: 30 };
    const res = await post('/v1/chat/completions', { ...request, stream: true, stream_options: { include_usage: true } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const events: string[] = [];
    for await (const data of sseEvents(res)) events.push(data);

    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as ChatCompletionChunk);
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(chunks.every((c) => c.object === 'chat.completion.chunk' && c.model === MODEL)).toBe(true);
    expect(chunks[0].choices[0]).toEqual({ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null });
    const content = chunks.slice(1, -2).map((c) => c.choices[0].delta.content);
    expect(content.length).toBeGreaterThan(5);
    expect(chunks.at(-2)!.choices[0]).toMatchObject({ delta: {}, finish_reason: 'length' });
    const promptTokens = pipeline.tokenizer.encode('user: Tell me a story about Lily.\nassistant:').length;
    expect(chunks.at(-1)!.usage).toEqual({ prompt_tokens: promptTokens, completion_tokens: 30, total_tokens: promptTokens + 30 });

    expect(chunks.at(-2)!.infermesh).toEqual({ recoveries: 0 });
    const response = await post('/v1/chat/completions', request);
    // A browser may read it: exposed by CORS.
    expect(response.headers.get('x-infermesh-recoveries')).toBe('0');
    expect(response.headers.get('access-control-expose-headers')).toContain('x-infermesh-recoveries');
    const whole = (await response.json()) as ChatCompletion;
    expect(whole.infermesh).toEqual({ recoveries: 0 });
    expect(whole.object).toBe('chat.completion');
    expect(whole.choices[0].message.content).toBe(content.join(''));
    expect(whole.choices[0].finish_reason).toBe('length');
    expect(whole.usage).toEqual({ prompt_tokens: promptTokens, completion_tokens: 30, total_tokens: promptTokens + 30 });
  });

  it("answers with the model's own greedy text for the rendered chat prompt", async () => {
    const res = await post('/v1/chat/completions', { model: MODEL, messages: story, temperature: 0, max_tokens: 20 });
    expect(res.status).toBe(200);
    const reply = (await res.json()) as ChatCompletion;
    let direct = '';
    for await (const t of pipeline.generate('user: Tell me a story about Lily.\nassistant:', { maxTokens: 20, temperature: 0, topP: 1, seed: 1 })) direct += t.text;
    expect(reply.choices[0].message.content).toBe(direct);
  });

  it('a client that disconnects mid-stream stops the generation', async () => {
    const request = { model: MODEL, messages: story, temperature: 0.9, seed: 3, max_tokens: 400 };
    // Left alone, this request runs well past the point where the client below goes away.
    const full = (await (await post('/v1/chat/completions', request)).json()) as ChatCompletion;
    expect(full.usage.completion_tokens).toBeGreaterThan(100);

    const controller = new AbortController();
    const before = generations.length;
    const res = await post('/v1/chat/completions', { ...request, stream: true }, { signal: controller.signal });
    let seen = 0;
    await expect(
      (async () => {
        for await (const _ of sseEvents(res)) if (++seen === 4) controller.abort();
      })(),
    ).rejects.toThrow();
    await expect.poll(() => generations[before]?.ended, { timeout: 5000 }).toBe(true);
    expect(generations[before].tokens).toBeLessThan(100);
  });

  it('a bad parameter is a 400 naming it, in OpenAI error shape', async () => {
    const res = await post('/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 42 }] });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({
      error: { message: 'messages[0].content: must be a string, got number 42', type: 'invalid_request_error', param: 'messages[0].content', code: null },
    });
    const hot = await post('/v1/chat/completions', { model: MODEL, messages: story, temperature: 7, stream: true });
    expect([hot.status, (await hot.json()).error.param]).toEqual([400, 'temperature']);
  });

  it('an unknown model is a 404 naming it and the served ones', async () => {
    const res = await post('/v1/chat/completions', { model: 'gpt-4o', messages: story });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({
      error: { message: `the model "gpt-4o" does not exist here; served: ${MODEL}`, type: 'invalid_request_error', param: 'model', code: 'model_not_found' },
    });
  });

  it('model may be left out while one model is served', async () => {
    const res = await post('/v1/chat/completions', { messages: story, temperature: 0, max_tokens: 3 });
    expect(res.status).toBe(200);
    expect(((await res.json()) as ChatCompletion).model).toBe(MODEL);
  });
});

describe('POST /v1/completions', () => {
  it("continues a prompt with llama2.c run.c's greedy story", async () => {
    const res = await post('/v1/completions', { model: MODEL, prompt: 'Once upon a time', temperature: 0, max_tokens: 40 });
    expect(res.status).toBe(200);
    const reply = (await res.json()) as Completion;
    expect(reply).toMatchObject({ object: 'text_completion', model: MODEL, choices: [{ index: 0, finish_reason: 'length' }] });
    expect(reply.choices[0].text.length).toBeGreaterThan(60);
    const reference = fixture.runs.find((r) => r.name === 'greedy-prompt')!.text;
    expect(reference.startsWith(`Once upon a time${reply.choices[0].text}`)).toBe(true);
  });

  it('streams text_completion chunks as SSE ending with [DONE]', async () => {
    const res = await post('/v1/completions', { model: MODEL, prompt: 'Once upon a time', temperature: 0, max_tokens: 10, stream: true });
    const events: string[] = [];
    for await (const data of sseEvents(res)) events.push(data);
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as Completion);
    expect(chunks.at(-1)!.choices[0].finish_reason).toBe('length');
    const reference = fixture.runs.find((r) => r.name === 'greedy-prompt')!.text;
    expect(reference.startsWith(`Once upon a time${chunks.map((c) => c.choices[0].text).join('')}`)).toBe(true);
  });

  it('a prompt longer than the context is a 400 naming prompt', async () => {
    const res = await post('/v1/completions', { model: MODEL, prompt: 'Once upon a time '.repeat(contextLength) });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toMatchObject({ param: 'prompt', message: expect.stringMatching(/tokens but the model's context is \d+/) });
  });
});

describe('generations at once', () => {
  it('past the limit a request is a 503 with Retry-After; a stream holds its slot until it ends', async () => {
    const gateway = createOpenAIGateway({
      models: () => [{ id: MODEL, name: MODEL, contextLength }],
      apiFor: () => createOpenAIApi({ modelId: MODEL, generate: tracked, countTokens: (text) => pipeline.tokenizer.encode(text).length, renderChat: createChatRenderer(undefined), contextLength }),
      maxGenerations: 1,
    });
    const one = await startHttpServer({ host: '127.0.0.1', port: 0, api: gateway });
    try {
      const to = (path: string, body: unknown) => fetch(new URL(path, one.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const streaming = await to('/v1/completions', { prompt: 'Once upon a time', temperature: 0, max_tokens: 20, stream: true });
      const events = sseEvents(streaming);
      await events.next();
      const busy = await to('/v1/completions', { prompt: 'Once', max_tokens: 2 });
      expect([busy.status, busy.headers.get('retry-after')]).toEqual([503, '1']);
      expect((await busy.json()).error).toMatchObject({ type: 'service_unavailable', code: 'server_busy' });
      for await (const _ of events);
      await expect.poll(async () => (await to('/v1/completions', { prompt: 'Once', max_tokens: 2 })).status).toBe(200);
    } finally {
      await one.close();
    }
  });
});

describe('GET /v1/models', () => {
  it('lists the served models in OpenAI list shape', async () => {
    const body = await (await fetch(new URL('/v1/models', server.url))).json();
    expect(body).toEqual({
      object: 'list',
      data: [{ id: MODEL, object: 'model', created: expect.any(Number), owned_by: 'infermesh', name: 'stories260K (llama2.c)', context_length: contextLength }],
    });
  });

  it('GET /v1/models/{id} gives one model, or a 404', async () => {
    expect((await (await fetch(new URL(`/v1/models/${MODEL}`, server.url))).json()).id).toBe(MODEL);
    expect((await fetch(new URL('/v1/models/nope', server.url))).status).toBe(404);
  });
});
