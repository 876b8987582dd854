/**
 * A grid client run inside the NAT lab's public namespace (e2e/nat.test.ts), where the test
 * process cannot reach: `node testkit/nat/nat-client.ts <url> <prompt> <maxTokens>` generates
 * greedily through the grid and prints one JSON line: the token ids and the route report's hops.
 */
import { connect } from '../../packages/sdk/src/node.ts';

const [url, prompt, maxTokens] = process.argv.slice(2);
const grid = await connect({ url });
try {
  const ids: number[] = [];
  for await (const t of grid.generate(prompt, { maxTokens: Number(maxTokens), temperature: 0, topP: 0.9, seed: 1 })) if (t.id !== null) ids.push(t.id);
  process.stdout.write(`${JSON.stringify({ ids, hops: grid.routeReport()?.hops ?? [] })}\n`);
} finally {
  await grid.close();
}
process.exit(0);
