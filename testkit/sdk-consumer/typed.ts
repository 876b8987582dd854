// An app's TypeScript: the package's declarations type every call here (tsc --noEmit).
import { connect, UsageError } from '@infermesh/sdk';
import type { DownloadProgress, GeneratedToken, GridClient, NodeConnectOptions } from '@infermesh/sdk';

const options: NodeConnectOptions = { url: 'http://127.0.0.1:8470', runtime: 'wasm', onProgress: (p: DownloadProgress) => p.loaded / p.total };
export async function use(signal: AbortSignal): Promise<string> {
  const grid: GridClient = await connect({ ...options, signal });
  const tokens: GeneratedToken[] = [];
  for await (const token of grid.generate('Once upon a time', { maxTokens: 8, temperature: 0, signal })) tokens.push(token);
  const chat = await grid.chat.completions.create({ messages: [{ role: 'user', content: 'Hi' }], max_tokens: 8 });
  await grid.close();
  if (!(new UsageError('x') instanceof Error)) throw new Error('UsageError is an Error');
  return tokens.map((t) => t.text).join('') + chat.choices[0].message.content;
}
