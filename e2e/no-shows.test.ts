/**
 * A stage that serves and then withholds its commitments, on a paid grid (a local anvil): two
 * donors in this process (cli/node-donor.ts) split the model; both earn honestly first, rewards
 * vesting slowly, so each has unvested rewards. Then one stops answering for its requests while
 * it stays connected: it loses its unvested rewards, its reputation records the no-shows, and a
 * second one keeps it out of routes. The honest donor loses nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { getAddress } from 'viem';
import { openCheckpoint } from '../cli/open-checkpoint.ts';
import { nodeDonorDeps } from '../cli/node-donor.ts';
import { startDonor } from '../web/donor/donor.ts';
import type { Donor } from '../web/donor/donor.ts';
import { compileTo, removeTempDirs, STORIES_260K, tempDir, TOK_512 } from '../testkit/model-fixtures.ts';
import { startGridServer } from '../signaling-server/grid-server.ts';
import type { GridServer } from '../signaling-server/grid-server.ts';
import { openGridStore } from '../signaling-server/store.ts';
import type { GridStore } from '../signaling-server/store.ts';
import { startGridSettlement } from '../signaling-server/settle/grid-settlement.ts';
import type { GridSettlement } from '../signaling-server/settle/grid-settlement.ts';

const CHAT = { messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 6, temperature: 0 };
const GRACE_MS = 3_000;

let server: GridServer;
let settlement: GridSettlement;
let store: GridStore;
const donors: Donor[] = [];
let withholding = false;
let honest: string;
let cheat: string;
const log: string[] = [];

async function chat(): Promise<void> {
  const response = await fetch(new URL('v1/chat/completions', server.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...CHAT, model: server.manifest.id }) });
  expect(response.status).toBe(200);
}

/** Unvested wei of a stage's receipts: earned, not released, not forfeited. */
function unvested(peerId: string): bigint {
  const provider = getAddress(settlement.payoutAddress(peerId)!);
  return settlement.ledger.receipts().filter((r) => r.provider === provider).reduce((sum, r) => sum + r.amount - r.released - r.forfeited, 0n);
}

async function until(check: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}\n${log.slice(-10).join('\n')}`);
    await server.validator.idle();
    await new Promise((r) => setTimeout(r, 200));
  }
}

beforeAll(async () => {
  const { dir } = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'f32');
  const data = await tempDir();
  // Rewards vest over a day: what the stages earn here stays unvested.
  settlement = await startGridSettlement({ ledgerPath: join(data, 'ledger.sqlite'), settleIntervalMs: 3_600_000, rewardHalfLifeMs: 86_400_000, sponsorOncePerDevice: false }, { log: (l) => log.push(l) });
  store = openGridStore(':memory:');
  server = await startGridServer(
    { host: '127.0.0.1', port: 0, modelDir: dir, maxLayersPerNode: 3, noShows: { commitGraceMs: GRACE_MS, suspendAfter: 2 } },
    { store, settlement, log: (l) => log.push(l) },
  );
  const hooks = { update() {}, throughput() {}, error: (m: string) => log.push(`donor error: ${m}`) };
  for (const [i, withhold] of [[0, () => false], [1, () => withholding]] as const) {
    const payoutKeyFile = join(data, `donor-${i}.key`);
    donors.push(await startDonor({ serverUrl: server.url, threads: 1 }, hooks, { ...nodeDonorDeps({ payoutKeyFile }), withholdCommitments: withhold }));
  }
  [honest, cheat] = donors.map((d) => d.node.peerId.toString());
  await server.coordinator.waitForCoverage(1, 60_000);
}, 120_000);

afterAll(async () => {
  for (const d of donors) await d.stop().catch(() => undefined);
  await server?.close();
  await settlement?.close();
  store?.close();
  await removeTempDirs();
});

describe('a stage that withholds its commitments while connected', () => {
  it('earns like any other while it answers for its requests', { timeout: 120_000 }, async () => {
    for (let i = 0; i < 4; i++) await chat();
    await until(() => unvested(honest) > 0n && unvested(cheat) > 0n, 'both stages earning');
    expect(store.reputation(cheat).noShows).toBe(0);
  });

  it('loses its unvested rewards, is recorded, and a second time is kept out of routes; the honest stage loses nothing', { timeout: 120_000 }, async () => {
    const honestBefore = unvested(honest);
    withholding = true;
    await chat();
    await until(() => store.reputation(cheat).noShows === 1, 'the no-show recorded', GRACE_MS + 30_000);
    expect(unvested(cheat)).toBe(0n);
    expect(settlement.ledger.receipts().some((r) => r.provider === getAddress(settlement.payoutAddress(cheat)!) && r.forfeited > 0n)).toBe(true);
    expect(log.some((l) => l.startsWith(`no-shows: ${cheat} stayed connected and gave no commitment`))).toBe(true);
    expect(server.coordinator.registry.isSuspended(cheat)).toBe(false);

    await chat();
    await until(() => server.coordinator.registry.isSuspended(cheat), 'the stage kept out of routes', GRACE_MS + 30_000);
    expect(store.reputation(cheat).noShows).toBe(2);
    // The honest stage answered for everything and keeps what it earned (more, now).
    expect(store.reputation(honest).noShows).toBe(0);
    expect(unvested(honest)).toBeGreaterThanOrEqual(honestBefore);
    expect(server.coordinator.registry.isBanned(cheat)).toBe(false);
  });
});
