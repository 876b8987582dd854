/**
 * The OpenAI gateway answers through the server's own grid client, which connects to the relay
 * on its first request. When that connection cannot be made (here: the relay is gone), the
 * request gets a 503 with Retry-After that names the problem, not a 500, and the next request
 * tries to connect again.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../cli/open-checkpoint.ts';
import { compileTo, removeTempDirs, STORIES_260K, TOK_512 } from '../testkit/model-fixtures.ts';
import { startGridServer } from './grid-server.ts';
import type { GridServer } from './grid-server.ts';

let server: GridServer;
let model: string;
beforeAll(async () => {
  const { dir, manifest } = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'f32');
  model = manifest.id;
  server = await startGridServer({ host: '127.0.0.1', port: 0, modelDir: dir });
}, 120_000);
afterAll(async () => {
  await server?.close();
  await removeTempDirs();
});

describe("the gateway's own grid client", () => {
  it('that cannot connect to its relay makes a 503 to retry, every time, not a 500', async () => {
    await server.relay.stop();
    for (let i = 0; i < 2; i++) {
      const res = await fetch(new URL('v1/chat/completions', server.url), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model, messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 4 }),
      });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('1');
      const { error } = (await res.json()) as { error: { code: string; message: string } };
      expect(error.code).toBe('grid_unreachable');
      expect(error.message).toMatch(/could not connect to its relay/);
    }
  });
});
