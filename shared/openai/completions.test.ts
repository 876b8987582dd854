/**
 * The OpenAI API over a token generator. The generator here is a scripted model (its text is
 * fixed, so the exact responses can be asserted); the server's gateway tests run the same API
 * over a real compiled model.
 */
import { describe, expect, it } from 'vitest';
import type { GenerateOptions, GeneratedToken } from '../runtime/pipeline.ts';
import { rejection } from '../../testkit/rejection.ts';
import { renderPlainChat } from './chat-template.ts';
import { createOpenAIApi, type OpenAIApiOptions } from './completions.ts';
import type { ChatCompletionChunk, Completion } from './types.ts';

/** A model that says `words` one token each and then ends its text, honouring maxTokens and the signal. */
function scriptedModel(words: string[]) {
  const calls: { prompt: string; options: GenerateOptions }[] = [];
  let running = 0;
  async function* generate(prompt: string, options: GenerateOptions): AsyncGenerator<GeneratedToken, void, void> {
    calls.push({ prompt, options });
    running++;
    try {
      for (let i = 0; i < Math.min(words.length, options.maxTokens); i++) {
        options.signal?.throwIfAborted();
        await new Promise((r) => setTimeout(r, 1));
        yield { id: 100 + i, text: words[i] };
      }
    } finally {
      running--;
    }
  }
  return { generate, calls, running: () => running };
}

function api(words: string[], extra: Partial<OpenAIApiOptions> = {}) {
  const model = scriptedModel(words);
  const openai = createOpenAIApi(
    {
      modelId: 'stories',
      generate: model.generate,
      // one token per word-ish piece, plus BOS, is enough to check the arithmetic
      countTokens: (text) => text.split(' ').length + 1,
      renderChat: renderPlainChat,
      contextLength: 64,
      ...extra,
    },
    { now: () => 1_700_000_000_500, newId: () => 'abc', randomSeed: () => 7 },
  );
  return { openai, model };
}

async function drain<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of stream) out.push(x);
  return out;
}

describe('chat.completions.create', () => {
  it('returns a chat.completion with the whole reply, finish_reason stop and usage', async () => {
    const { openai, model } = api(['Once', ' upon', ' a', ' time']);
    const reply = await openai.chat.completions.create({ messages: [{ role: 'user', content: 'Tell a story' }] });
    expect(reply).toEqual({
      id: 'chatcmpl-abc',
      object: 'chat.completion',
      created: 1_700_000_000,
      model: 'stories',
      choices: [{ index: 0, message: { role: 'assistant', content: 'Once upon a time', refusal: null }, logprobs: null, finish_reason: 'stop' }],
      usage: { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 },
      infermesh: { recoveries: 0 },
    });
    expect(model.calls[0].prompt).toBe('user: Tell a story\nassistant:');
  });

  it('passes OpenAI defaults to the generator: temperature 1, top_p 1, the rest of the context, a random seed', async () => {
    const { openai, model } = api(['hi']);
    await openai.chat.completions.create({ messages: [{ role: 'user', content: 'a b' }] });
    expect(model.calls[0].options).toMatchObject({ temperature: 1, topP: 1, seed: 7, maxTokens: 64 - 4 });
  });

  it('passes temperature, top_p, seed and max_completion_tokens through', async () => {
    const { openai, model } = api(['hi']);
    await openai.chat.completions.create({ messages: [{ role: 'user', content: 'x' }], temperature: 0.5, top_p: 0.9, seed: 42, max_tokens: 9, max_completion_tokens: 3 });
    expect(model.calls[0].options).toMatchObject({ temperature: 0.5, topP: 0.9, seed: 42, maxTokens: 3 });
  });

  it('treats top_p 0 as greedy (the smallest nucleus is the single most likely token)', async () => {
    const { openai, model } = api(['hi']);
    await openai.chat.completions.create({ messages: [{ role: 'user', content: 'x' }], top_p: 0 });
    expect(model.calls[0].options.temperature).toBe(0);
  });

  it("finishes with 'length' when max_tokens runs out", async () => {
    const { openai } = api(['a', 'b', 'c', 'd']);
    const reply = await openai.chat.completions.create({ messages: [{ role: 'user', content: 'x' }], max_tokens: 2 });
    expect(reply.choices[0]).toMatchObject({ message: { content: 'ab' }, finish_reason: 'length' });
    expect(reply.usage.completion_tokens).toBe(2);
  });

  it("clips max_tokens to the context and then finishes with 'length'", async () => {
    const { openai, model } = api(['a', 'b', 'c', 'd'], { contextLength: 5 });
    const reply = await openai.chat.completions.create({ messages: [{ role: 'user', content: 'x' }], max_tokens: 1000 });
    expect(model.calls[0].options.maxTokens).toBe(2);
    expect(reply.choices[0].finish_reason).toBe('length');
  });

  it('streams a role chunk, content deltas and a last chunk with finish_reason, then usage when asked', async () => {
    const { openai } = api(['Once', ' upon']);
    const chunks = await drain(await openai.chat.completions.create({ messages: [{ role: 'user', content: 'x' }], stream: true, stream_options: { include_usage: true } }));
    const base = { id: 'chatcmpl-abc', object: 'chat.completion.chunk', created: 1_700_000_000, model: 'stories' };
    expect(chunks).toEqual<ChatCompletionChunk[]>([
      { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] },
      { ...base, choices: [{ index: 0, delta: { content: 'Once' }, logprobs: null, finish_reason: null }] },
      { ...base, choices: [{ index: 0, delta: { content: ' upon' }, logprobs: null, finish_reason: null }] },
      { ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }], infermesh: { recoveries: 0 } },
      { ...base, choices: [], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } },
    ] as ChatCompletionChunk[]);
  });

  it('ends the text before a stop sequence, also when the sequence spans tokens, and never streams part of it', async () => {
    const { openai } = api(['The', ' end', '.\n', 'User', ':', ' more']);
    const reply = await openai.chat.completions.create({ messages: [{ role: 'user', content: 'x' }], stop: ['\nUser:'] });
    expect(reply.choices[0]).toMatchObject({ message: { content: 'The end.' }, finish_reason: 'stop' });
    const streamed = await drain(await openai.chat.completions.create({ messages: [{ role: 'user', content: 'x' }], stop: '\nUser:', stream: true }));
    const deltas = streamed.map((c) => c.choices[0]?.delta.content ?? '');
    expect(deltas.join('')).toBe('The end.');
    expect(deltas.some((d) => d.includes('\n'))).toBe(false);
  });

  it('stops the generator when a stream consumer stops reading', async () => {
    const { openai, model } = api(Array.from({ length: 50 }, (_, i) => `w${i} `));
    const stream = await openai.chat.completions.create({ messages: [{ role: 'user', content: 'x' }], stream: true });
    let seen = 0;
    for await (const _ of stream) if (++seen === 3) break;
    expect(model.running()).toBe(0);
  });

  it('aborts generation through the signal', async () => {
    const { openai } = api(Array.from({ length: 50 }, (_, i) => `w${i} `));
    const controller = new AbortController();
    const stream = await openai.chat.completions.create({ messages: [{ role: 'user', content: 'x' }], stream: true }, { signal: controller.signal });
    const err = await rejection(
      (async () => {
        let seen = 0;
        for await (const _ of stream) if (++seen === 3) controller.abort();
      })(),
    );
    expect(err.name).toBe('AbortError');
  });
});

describe('completions.create', () => {
  it('returns a text_completion and defaults max_tokens to 16 as OpenAI does', async () => {
    const { openai, model } = api(Array.from({ length: 30 }, () => 'x'));
    const reply = await openai.completions.create({ prompt: 'Once upon a time' });
    expect(reply).toMatchObject({
      id: 'cmpl-abc',
      object: 'text_completion',
      model: 'stories',
      choices: [{ index: 0, text: 'x'.repeat(16), logprobs: null, finish_reason: 'length' }],
      usage: { prompt_tokens: 5, completion_tokens: 16, total_tokens: 21 },
      infermesh: { recoveries: 0 },
    });
    expect(model.calls[0].prompt).toBe('Once upon a time');
  });

  it('streams text_completion chunks ending with finish_reason', async () => {
    const { openai } = api(['a', 'b']);
    const chunks = await drain(await openai.completions.create({ prompt: ['hi'], stream: true }));
    expect(chunks.map((c: Completion) => [c.choices[0].text, c.choices[0].finish_reason])).toEqual([
      ['a', null],
      ['b', null],
      ['', 'stop'],
    ]);
  });
});

describe('route recoveries', () => {
  it('reports the most recoveries the tokens carried, on a response and on the finishing chunk of a stream', async () => {
    async function* generate(): AsyncGenerator<GeneratedToken, void, void> {
      yield { id: 1, text: 'a', recoveries: 0 };
      yield { id: 2, text: 'b', recoveries: 1 };
      yield { id: 3, text: 'c', recoveries: 2 };
    }
    const openai = createOpenAIApi({ modelId: 'm', generate, countTokens: () => 1, renderChat: renderPlainChat, contextLength: 64 });
    const reply = await openai.completions.create({ prompt: 'x', max_tokens: 3 });
    expect(reply).toMatchObject({ choices: [{ text: 'abc' }], infermesh: { recoveries: 2 } });
    const chunks = await drain(await openai.chat.completions.create({ messages: [{ role: 'user', content: 'x' }], stream: true }));
    expect(chunks.at(-1)).toMatchObject({ choices: [{ finish_reason: 'stop' }], infermesh: { recoveries: 2 } });
    expect(chunks.slice(0, -1).every((c) => c.infermesh === undefined)).toBe(true);
  });
});

describe('parameter checks (UsageError naming the parameter, raised by create before anything runs)', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['temperature', { temperature: 3 }, /^temperature: must be a number from 0 to 2, got number 3$/],
    ['temperature', { temperature: 'hot' }, /^temperature: must be a number from 0 to 2, got "hot"$/],
    ['top_p', { top_p: 1.5 }, /^top_p: must be a number from 0 to 1/],
    ['max_tokens', { max_tokens: 0 }, /^max_tokens: must be an integer ≥ 1, got number 0$/],
    ['max_tokens', { max_tokens: 2.5 }, /^max_tokens: must be an integer/],
    ['max_completion_tokens', { max_completion_tokens: '9' }, /^max_completion_tokens: must be an integer/],
    ['n', { n: 2 }, /^n: only 1 choice per request is supported, got 2$/],
    ['seed', { seed: 0 }, /^seed: must be a non-zero integer$/],
    ['seed', { seed: 1.5 }, /^seed: must be an integer/],
    ['stream', { stream: 'yes' }, /^stream: must be true or false/],
    ['stop', { stop: ['a', 'b', 'c', 'd', 'e'] }, /^stop: at most 4 sequences/],
    ['stop', { stop: 5 }, /^stop: must be a string or an array of strings/],
  ];
  for (const [param, extra, message] of cases) {
    it(`${param} ${JSON.stringify(extra[param])}`, async () => {
      const { openai, model } = api(['a']);
      const err = await rejection(openai.chat.completions.create({ messages: [{ role: 'user', content: 'x' }], ...extra } as never));
      expect(err.name).toBe('UsageError');
      expect(err.source).toBe(param);
      expect(err.message).toMatch(message);
      expect(model.calls).toHaveLength(0);
    });
  }

  it('messages must be an array of {role, content}', async () => {
    const { openai } = api(['a']);
    const err = await rejection(openai.chat.completions.create({ messages: [{ role: 'user', content: 'x' }, { role: 'robot', content: 'y' }] } as never));
    expect(err).toMatchObject({ name: 'UsageError', source: 'messages[1].role' });
  });

  it('prompt must be a string', async () => {
    const { openai } = api(['a']);
    const err = await rejection(openai.completions.create({ prompt: [1, 2, 3] } as never));
    expect(err).toMatchObject({ name: 'UsageError', source: 'prompt' });
  });

  it('a prompt as long as the context is refused, naming its length', async () => {
    const { openai } = api(['a'], { contextLength: 4 });
    const err = await rejection(openai.completions.create({ prompt: 'one two three four' }));
    expect(err).toMatchObject({ name: 'UsageError', source: 'prompt' });
    expect(err.message).toMatch(/5 tokens but the model's context is 4/);
  });

  it('a prompt longer than any that fits the context is refused before it is encoded', async () => {
    let encoded = 0;
    const { openai } = api(['a'], { contextLength: 8, maxPieceChars: 4, countTokens: () => ++encoded });
    // 4 (slack) × 4 characters a piece × 8 tokens: 128 characters at most.
    const err = await rejection(openai.completions.create({ prompt: 'x'.repeat(129) }));
    expect(err).toMatchObject({ name: 'UsageError', source: 'prompt', shortMessage: "is 129 characters long; a prompt for the model's context of 8 tokens has at most 128" });
    expect(encoded).toBe(0);
    await openai.completions.create({ prompt: 'x'.repeat(128) });
    expect(encoded).toBe(1);
  });

  it('a chat of more messages than the context has tokens is refused before it is rendered', async () => {
    const { openai } = api(['a'], { contextLength: 8 });
    const messages = Array.from({ length: 9 }, () => ({ role: 'user' as const, content: 'x' }));
    const err = await rejection(openai.chat.completions.create({ messages }));
    expect(err).toMatchObject({ name: 'UsageError', source: 'messages', shortMessage: "holds 9 messages; at most 8 fit the model's context" });
  });

  it('params must be an object', async () => {
    const { openai } = api(['a']);
    const err = await rejection(openai.completions.create(null as never));
    expect(err).toMatchObject({ name: 'UsageError', source: 'request' });
  });
});
