/**
 * A newcomer's first minutes: `npm start` (`infermesh serve` on its defaults: the default model,
 * a local anvil, one donor in the server's own process), then the official `openai` client
 * against the printed URL. The request is answered with no browser open: the local donor
 * serves every layer, and says so in the server's log.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { startServeProcess } from '../testkit/fuzz/serve-process.ts';
import type { ServeProcess } from '../testkit/fuzz/serve-process.ts';
import { removeTempDirs, tempDir } from '../testkit/model-fixtures.ts';

/** The default model is compiled on first use (a fresh clone's first start), then anvil starts. */
const START_TIMEOUT_MS = 240_000;
const DONOR_TIMEOUT_MS = 120_000;

let server: ServeProcess;

async function untilLogged(pattern: RegExp, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = server.stderrTail().split('\n').find((l) => pattern.test(l));
    if (line) return line;
    if (Date.now() > deadline) throw new Error(`the server did not log ${pattern} within ${timeoutMs} ms; its stderr:\n${server.stderrTail()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

beforeAll(async () => {
  server = await startServeProcess({ dataDir: await tempDir(), startTimeoutMs: START_TIMEOUT_MS });
}, START_TIMEOUT_MS + 10_000);

afterAll(async () => {
  await server?.stop();
  await removeTempDirs();
});

describe('npm start, then the official openai client', () => {
  it('prints how to add donors, and its own donor serves every layer', async () => {
    const tail = server.stderrTail();
    expect(tail).toMatch(/donate a GPU: +open http:\/\/127\.0\.0\.1:\d+\/donor\/ in a browser/);
    expect(tail).toMatch(/donate a machine's CPU: +npx infermesh donate http:\/\/127\.0\.0\.1:\d+\//);
    expect(await untilLogged(/^local donor: serving layers 0\.\.11 of 12 on .*\(native CPU\)/, DONOR_TIMEOUT_MS)).toBeTruthy();
  }, DONOR_TIMEOUT_MS + 10_000);

  it('answers a chat request, streamed or not, with no browser open', async () => {
    const client = new OpenAI({ baseURL: new URL('v1', server.url).href, apiKey: 'none', maxRetries: 0 });
    const models = await client.models.list();
    expect(models.data).toHaveLength(1);
    const model = models.data[0].id;
    const request = { model, messages: [{ role: 'user' as const, content: 'Tell me a story.' }], max_tokens: 12, temperature: 0 };

    const answer = await client.chat.completions.create(request);
    expect(answer.choices[0].finish_reason).toBe('length');
    expect(answer.usage?.completion_tokens).toBe(12);
    const text = answer.choices[0].message.content ?? '';
    expect(text.length).toBeGreaterThan(0);

    // Greedy: the stream carries the same text, piece by piece.
    let streamed = '';
    for await (const chunk of await client.chat.completions.create({ ...request, stream: true })) streamed += chunk.choices[0]?.delta.content ?? '';
    expect(streamed).toBe(text);
    // The work was the local donor's: the validator checked it, and the ledger credits it.
    const donor = /coordinator: (\S+) assigned layers 0\.\.11/.exec(server.stderrTail())![1];
    const deadline = Date.now() + 60_000;
    let entry: { verifiedWork?: number } = {};
    while (!(entry.verifiedWork! > 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      entry = (await (await fetch(new URL(`v1/ledger/peers/${donor}`, server.url))).json()) as typeof entry;
    }
    expect(entry.verifiedWork).toBeGreaterThan(0);
  }, 120_000);
});
