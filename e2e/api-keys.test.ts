/**
 * The OpenAI gateway of a grid reachable beyond this machine takes API keys: the official
 * `openai` client is refused without one (401), answered with one, charged for what it used
 * (streams included), refused past its budget (429 insufficient_quota) or its rate (429 with
 * Retry-After), and refused once the key is revoked, all by `infermesh keys` while the server
 * runs. A donor in this process (cli/node-donor.ts) serves the layers: no browser.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import { openCheckpoint } from '../cli/open-checkpoint.ts';
import { startNodeDonor } from '../cli/node-donor.ts';
import type { Donor } from '../web/donor/donor.ts';
import { compileTo, REPO_ROOT, removeTempDirs, STORIES_260K, tempDir, TOK_512 } from '../testkit/model-fixtures.ts';
import { startGridServer } from '../signaling-server/grid-server.ts';
import type { GridServer } from '../signaling-server/grid-server.ts';
import { openKeyStore } from '../signaling-server/api-keys/key-store.ts';
import type { KeyStore } from '../signaling-server/api-keys/key-store.ts';
import { createGatewayKeys } from '../signaling-server/api-keys/gateway-keys.ts';

const run = promisify(execFile);
const BIN = join(REPO_ROOT, 'bin', 'infermesh.js');
const CHAT = { messages: [{ role: 'user' as const, content: 'Once upon a time' }], max_tokens: 8, temperature: 0 };

let server: GridServer;
let donor: Donor;
let keys: KeyStore;
let dataDir: string;
let model: string;

const client = (apiKey: string) => new OpenAI({ baseURL: new URL('v1', server.url).href, apiKey, maxRetries: 0 });
/** `infermesh keys …` as the operator runs it, against the server's data folder. */
const cli = async (...args: string[]) => (await run(process.execPath, [BIN, 'keys', ...args, '--data', dataDir])).stdout.trim();

beforeAll(async () => {
  const { dir, manifest } = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'f32');
  model = manifest.id;
  dataDir = await tempDir();
  keys = openKeyStore(join(dataDir, 'keys.sqlite'));
  // Keys required, as for a grid with a public URL or a non-loopback address (serve decides so).
  server = await startGridServer({ host: '127.0.0.1', port: 0, modelDir: dir }, { keys: createGatewayKeys({ required: true }, { keys }) });
  donor = await startNodeDonor({ serverUrl: server.url, threads: 1, payoutKeyFile: join(dataDir, 'donor.key') }, { update() {}, throughput() {}, error() {} });
  await server.coordinator.waitForCoverage(1, 60_000);
}, 120_000);

afterAll(async () => {
  await donor?.stop();
  await server?.close();
  keys?.close();
  await removeTempDirs();
});

describe('API keys on the OpenAI gateway', () => {
  it('refuse an anonymous call, and the official client with a key the grid never made: 401, OpenAI-shaped', async () => {
    // The official client will not send a request without a key: an anonymous caller is curl.
    for (const path of ['v1/chat/completions', 'v1/completions', 'v1/models']) {
      const post = path !== 'v1/models';
      const response = await fetch(new URL(path, server.url), post ? { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, ...CHAT, prompt: 'Hi' }) } : {});
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toBe('Bearer realm="infermesh"');
      expect(((await response.json()) as { error: unknown }).error).toMatchObject({ type: 'invalid_request_error', code: 'missing_api_key', message: expect.stringMatching(/needs a key: send Authorization: Bearer <key>/) });
    }
    const err = await client('im-made-up').chat.completions.create({ model, ...CHAT }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.AuthenticationError);
    expect(err).toMatchObject({ status: 401, code: 'invalid_api_key' });
  });

  it('answer a key the operator made while the server runs, and charge it what each request used, streams included', { timeout: 60_000 }, async () => {
    const secret = await cli('create', '--name', 'tester', '--budget', '1000');
    const answer = await client(secret).chat.completions.create({ model, ...CHAT });
    expect(answer.usage?.completion_tokens).toBe(8);
    expect(keys.find(secret)).toMatchObject({ spentTokens: answer.usage!.total_tokens, requests: 1 });

    let text = '';
    let sawUsage = false;
    for await (const chunk of await client(secret).chat.completions.create({ model, ...CHAT, stream: true })) {
      text += chunk.choices[0]?.delta.content ?? '';
      sawUsage ||= chunk.usage != null;
    }
    expect(text).toBe(answer.choices[0].message.content);
    // Metered without the client asking for usage, and the usage chunk not forced on it.
    expect(sawUsage).toBe(false);
    expect(keys.find(secret)).toMatchObject({ spentTokens: 2 * answer.usage!.total_tokens, requests: 2 });
  });

  it('refuse a key past its budget with 429 insufficient_quota, and one past its rate with 429 and Retry-After', { timeout: 60_000 }, async () => {
    const small = await cli('create', '--budget', '5');
    await client(small).chat.completions.create({ model, ...CHAT });
    const spent = await client(small).chat.completions.create({ model, ...CHAT }).catch((e: unknown) => e);
    expect(spent).toBeInstanceOf(OpenAI.RateLimitError);
    expect(spent).toMatchObject({ status: 429, code: 'insufficient_quota', type: 'insufficient_quota' });

    const slow = await cli('create', '--rate', '1');
    await client(slow).models.list();
    const fast = await client(slow).models.list().catch((e: unknown) => e);
    expect(fast).toMatchObject({ status: 429, code: 'rate_limit_exceeded' });
    expect(Number((fast as InstanceType<typeof OpenAI.RateLimitError>).headers?.get('retry-after'))).toBeGreaterThan(0);
  });

  it('refuse a key once `infermesh keys revoke` revoked it, and list it so', { timeout: 60_000 }, async () => {
    const secret = await cli('create', '--name', 'leaked');
    await client(secret).models.list();
    const id = keys.find(secret)!.id;
    await cli('revoke', id);
    await expect(client(secret).models.list()).rejects.toMatchObject({ status: 401, code: 'invalid_api_key', message: expect.stringContaining(`API key ${id} was revoked`) });
    expect(await cli('list')).toMatch(new RegExp(`${id}  "leaked"  revoked `));
  });
});
