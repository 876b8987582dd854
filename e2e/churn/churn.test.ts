/**
 * Generation survives tabs that leave or slow down (the churn suite, `npm run test:churn`):
 * six real donor tabs, each in a Chromium of its own, serve stories260K as three stages of two
 * replicas each; a Node grid client generates through them over real WebRTC. At a chosen token
 * one stage of the route (first, middle or last) is hit by each fault of testkit/churn/faults.ts,
 * and the text must be exactly the unbroken run's, with the recovery reported. A tab the fault
 * took is replaced by a fresh one before the next case.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { openCheckpoint } from '../../cli/open-checkpoint.ts';
import { compileTo, removeTempDirs, STORIES_260K, TOK_512 } from '../../testkit/model-fixtures.ts';
import { startChurnGrid } from '../../testkit/churn/churn-grid.ts';
import type { ChurnGrid } from '../../testkit/churn/churn-grid.ts';
import { CHURN_FAULTS, hitStage, injectFault, recoverTabs, STAGE_POSITIONS } from '../../testkit/churn/faults.ts';
import type { ChurnFault, StagePosition } from '../../testkit/churn/faults.ts';
import type { GenerateOptions } from '../../shared/runtime/pipeline.ts';

const PROMPT = 'Once upon a time';
const GREEDY: Partial<GenerateOptions> = { maxTokens: 40, temperature: 0 };
const SAMPLED: Partial<GenerateOptions> = { maxTokens: 40, temperature: 0.9, topP: 0.9, seed: 11 };

let grid: ChurnGrid;
const unbroken = new Map<Partial<GenerateOptions>, string>();

beforeAll(async () => {
  const { dir } = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'f32');
  // Six Chromiums on a 2-core CI machine stall now and then for a few hundred milliseconds, and
  // a request's first step (a stream opened at every stage) for over a second. Deadlines of 1 s
  // for a decode step and 3 s for a first step (400 ms and 1.5 s by default, which `bench churn`
  // measures) keep such a hiccup from passing for a fault, so a throttled stage (THROTTLE_MS a
  // frame) is caught by its hop times, not by a missed deadline, and each case tests its fault.
  grid = await startChurnGrid({ modelDir: dir, tabs: 6, maxLayersPerNode: 2, recovery: { minDeadlineMs: 1_000, setupMs: 3_000 }, log: process.env.CHURN_DEBUG ? (line) => console.error(line) : undefined });
  for (const options of [GREEDY, SAMPLED]) unbroken.set(options, await generate(options, []));
}, 300_000);

afterAll(async () => {
  await grid?.close();
  await removeTempDirs();
});

/** Generates, doing each fault when its token has arrived (before the next step goes out). */
async function generate(options: Partial<GenerateOptions>, faults: { atToken: number; fault: ChurnFault; position: StagePosition }[]): Promise<string> {
  let text = '';
  let tokens = 0;
  for await (const token of grid.client.generate(PROMPT, options)) {
    text += token.text;
    if (token.id !== null) tokens++;
    for (const f of faults.filter((f) => f.atToken === tokens)) {
      hit.push({ peerId: await hitStage(grid, f.position, f.fault), fault: f.fault });
      if (process.env.CHURN_DEBUG) {
        const at = (id: string, l?: { start: number; end: number }) => `${id.slice(-6)}@${l ? `${l.start}..${l.end - 1}` : '-'}`;
        const route = (await grid.client.route()).hops.map((h) => at(h.peerId, h.layers)).join(' ');
        const serving = [...grid.server.coordinator.registry.peers.values()].filter((p) => p.role === 'donor').map((p) => at(p.peerId, p.serving)).join(' ');
        console.error(`${f.fault} ${f.position} at token ${tokens}: hit ${hit.at(-1)!.peerId.slice(-6)} on route ${route}; donors serving ${serving}`);
      }
    }
  }
  return text;
}

let hit: { peerId: string; fault: ChurnFault }[] = [];

/** Brings back the tabs the faults hit, so the next case has a standby for every hop again. */
async function repair(): Promise<void> {
  const t0 = performance.now();
  await recoverTabs(grid, hit);
  if (process.env.CHURN_DEBUG) console.error(`repaired ${hit.map((h) => h.fault).join(', ')} in ${Math.round(performance.now() - t0)} ms; recoveries ${JSON.stringify(grid.client.routeReport()?.recoveries)}`);
  hit = [];
}

describe('a generation whose route loses a stage', () => {
  it('runs on three stages with a standby for each', async () => {
    const route = await grid.client.route();
    expect(route.hops).toHaveLength(3);
    expect(unbroken.get(GREEDY)!.length).toBeGreaterThan(40);
  });

  it('has a tab\'s peers close their links to it within a second or two of it dropping them, not when ICE gives up (~16 s)', async () => {
    // A link a tab dropped must not look open to the stage that hands it frames: no stream opens on it.
    const dropper = grid.tabOf((await grid.client.route()).hops[1].peerId);
    const linksTo = async (peerId: string) =>
      (await Promise.all(grid.tabs.filter((t) => t !== dropper).map((t) => t.page.evaluate(() => window.linkFaults.directLinks())))).flat().filter((l) => l.peerId === peerId).map((l) => l.id);
    const before = await linksTo(dropper.peerId);
    expect(before.length).toBeGreaterThan(0); // the first stage hands the middle one its frames
    expect(await dropper.page.evaluate(() => window.linkFaults.dropLinks())).toBeGreaterThan(0);
    // The tabs dial it again soon (a dropped link heals): the links that were open must be the ones gone.
    await vi.waitUntil(async () => (await linksTo(dropper.peerId)).every((id) => !before.includes(id)), { timeout: 2_000, interval: 100 });
  });

  for (const fault of CHURN_FAULTS) {
    for (const position of STAGE_POSITIONS) {
      it(`finishes with the unbroken text when the ${position} stage is hit by ${fault}`, async () => {
        let text: string;
        try {
          text = await generate(GREEDY, [{ atToken: 12, fault, position }]);
        } finally {
          await repair();
        }
        const recoveries = grid.client.routeReport()!.recoveries;
        expect(text).toBe(unbroken.get(GREEDY));
        expect(recoveries.length).toBeGreaterThanOrEqual(1);
        // Noticed and answered in seconds, never by the fixed 60 s step timeout. How fast is
        // `bench churn`'s to measure (recoveryMs), not a timed test's on a loaded machine.
        for (const r of recoveries) expect(r.ms).toBeLessThan(10_000);
        // A throttled stage still answers every step: its hop time gives it away, and it is swapped for being slow.
        if (fault === 'throttle') expect(recoveries.map((r) => r.reason)).toContain('slow');
      });
    }
  }

  it('tells an OpenAI API client the recoveries: x-infermesh-recoveries on a completion, a field on a stream\'s last chunk', async () => {
    const gateway = await grid.server.client();
    const post = (stream: boolean) =>
      fetch(new URL('v1/completions', grid.server.url), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: PROMPT, max_tokens: GREEDY.maxTokens, temperature: 0, stream }) });
    // The gateway's client is new (its first step dials every stage, under the default deadlines
    // on a loaded machine): even an unbroken request may recover from a stall, and says so.
    const warm = await post(false);
    const warmBody = (await warm.json()) as { choices: { text: string }[]; infermesh: { recoveries: number } };
    expect(warm.headers.get('x-infermesh-recoveries')).toBe(String(warmBody.infermesh.recoveries));
    expect(warmBody.choices[0].text).toBe(unbroken.get(GREEDY));

    // The first stage of the gateway's route freezes before the request: still connected, so the
    // coordinator still routes through it, and the request's very first step recovers. (A closed
    // tab could already be gone from the fresh route a request asks for once its route is 5 s
    // old, and then there is nothing to recover: that race made this test flaky.)
    const first = (await gateway.route()).hops[0];
    await injectFault(grid.tabOf(first.peerId), 'freeze');
    hit.push({ peerId: first.peerId, fault: 'freeze' });
    const response = await post(false).finally(repair);
    const body = (await response.json()) as { choices: { text: string }[]; infermesh: { recoveries: number } };
    expect(response.headers.get('x-infermesh-recoveries')).toBe(String(body.infermesh.recoveries));
    expect(body.infermesh.recoveries).toBeGreaterThanOrEqual(1);
    expect(body.choices[0].text).toBe(unbroken.get(GREEDY));

    // A stream: the last stage is frozen after the tenth chunk; the finishing chunk says so.
    const stream = await post(true);
    const reader = stream.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    let chunks = 0;
    let finish: { infermesh?: { recoveries: number } } | undefined;
    for (let buffered = ''; ; ) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += value;
      const events = buffered.split('\n\n');
      buffered = events.pop()!;
      for (const event of events) {
        const data = event.replace(/^data: /, '');
        if (data === '[DONE]') continue;
        const chunk = JSON.parse(data) as { choices: { text: string; finish_reason: string | null }[]; infermesh?: { recoveries: number } };
        text += chunk.choices[0]?.text ?? '';
        if (chunk.choices[0]?.finish_reason) finish = chunk;
        if (++chunks === 10) {
          const last = (await gateway.route()).hops.at(-1)!;
          await injectFault(grid.tabOf(last.peerId), 'freeze');
          hit.push({ peerId: last.peerId, fault: 'freeze' });
        }
      }
    }
    await repair();
    expect(text).toBe(unbroken.get(GREEDY));
    expect(finish?.infermesh?.recoveries).toBeGreaterThanOrEqual(1);
  });

  it('fails within seconds, naming the layers, when no tab serves them any more', async () => {
    // Every tab but the first stage's two closes: two tabs of at most two layers cannot hold the
    // model's five, so the coordinator cannot re-place the lost layers (with fewer tabs gone, it
    // does, and the request rightly survives), and the last layer stays uncovered.
    const first = (await grid.client.route()).hops[0];
    const leaving = [...grid.server.coordinator.registry.peers.values()].filter((p) => p.role === 'donor' && p.serving?.start !== first.layers.start);
    let failedAfterMs = 0;
    const run = (async () => {
      let tokens = 0;
      for await (const token of grid.client.generate(PROMPT, GREEDY)) {
        if (token.id !== null && ++tokens === 10) {
          for (const p of leaving) {
            await injectFault(grid.tabOf(p.peerId), 'close-tab');
            hit.push({ peerId: p.peerId, fault: 'close-tab' });
          }
          failedAfterMs = performance.now();
        }
      }
    })();
    const failure = await run.then(() => null, (err: unknown) => err).finally(() => (failedAfterMs = performance.now() - failedAfterMs));
    await repair();
    const nLayers = grid.server.manifest.config.nLayers;
    expect(failure).toMatchObject({ name: 'LayersUncoveredError', message: expect.stringMatching(new RegExp(`layers (\\d+\\.\\.)?${nLayers - 1} of 0\\.\\.${nLayers - 1} are served by no stage`)) });
    expect(failedAfterMs).toBeLessThan(10_000);
  });

  it('survives two successive faults in one request, sampled text identical for the same seed', async () => {
    let text: string;
    try {
      text = await generate(SAMPLED, [
        { atToken: 8, fault: 'close-tab', position: 'middle' },
        { atToken: 20, fault: 'freeze', position: 'first' },
      ]);
    } finally {
      await repair();
    }
    const recoveries = grid.client.routeReport()!.recoveries;
    expect(text).toBe(unbroken.get(SAMPLED));
    expect(recoveries.length).toBeGreaterThanOrEqual(2);
  });
});
