/**
 * Each test-only stage fault (testkit/engine/stage-faults.ts) caught end to end over real libp2p in Node: a
 * stage peer whose shard engine is loaded with the fault serves layers 2..3 of stories260K f32
 * between two honest stages; short greedy generations go through that route until the
 * validator on the relay gives the cheat a failing verdict, confirmed by its second replay,
 * while the honest stages of the same requests pass. The number of requests it took (detection
 * latency) is printed per fault. Same grid as e2e/trust-stages.test.ts (testkit/trust-grid.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTempDirs } from '../testkit/model-fixtures.ts';
import { parseStageFault } from '../testkit/engine/stage-fault.ts';
import type { Verdict } from '../signaling-server/trust/validator.ts';
import { startTrustGrid } from '../testkit/trust-grid.ts';
import type { StagePeer, TrustGrid } from '../testkit/trust-grid.ts';

const RANGES = [
  { start: 0, end: 2 },
  { start: 2, end: 4 },
  { start: 4, end: 5 },
];
/** The faults in their donor-page URL form (?fault=), so the parser is on the path too. */
const FAULTS = ['other-model', 'q4-weights', 'skip-layer', 'noise:0.01', 'replay-old-output'];
/** Requests tried before a fault counts as undetected; a new peer has most of its steps checked. */
const MAX_REQUESTS = 5;
const TOKENS = 12;

let grid: TrustGrid;
let honest: StagePeer[];
const latency: Record<string, { requests: number | null; checkedSteps: string; worstStep: number; match: number; valueError: number }> = {};

beforeAll(async () => {
  grid = await startTrustGrid();
  honest = [];
  for (const layers of RANGES) honest.push(await grid.startStage(layers));
});

afterAll(async () => {
  console.log(`\ndetection latency per stage fault (stories260K f32, cheat on layers 2..3, ${TOKENS}-token requests): requests until a confirmed failing verdict`);
  console.table(latency);
  await grid?.stop();
  await removeTempDirs();
});

describe('an honest route', () => {
  // Also opens the client's WebRTC connections, which may take one dial timeout on a fresh grid.
  it('every stage of it is judged honest', async () => {
    grid.verdicts.length = 0;
    await grid.generate(honest, TOKENS);
    await grid.settled(honest);
    expect(grid.verdicts.map((v) => [v.peerId, v.ok])).toEqual(expect.arrayContaining(honest.map((p) => [p.hop.peerId, true])));
  });
});

describe('a stage peer serving with a fault', () => {
  for (const text of FAULTS) {
    it(`${text}: the validator's verdict against it fails, confirmed, while the honest stages pass`, async () => {
      const cheat = await grid.startStage(RANGES[1], { fault: parseStageFault(text) });
      const route = [honest[0], cheat, honest[2]];
      const { verdicts } = grid;
      const honestVerdicts: Verdict[] = [];
      let caught: Verdict | undefined;
      let requests = 0;
      try {
        while (!caught && requests < MAX_REQUESTS) {
          verdicts.length = 0;
          const generated = await grid.generate(route, TOKENS);
          expect(generated.length).toBeGreaterThan(0);
          await grid.settled(route);
          requests++;
          const judged = new Map(verdicts.map((v) => [v.peerId, v]));
          honestVerdicts.push(...[honest[0], honest[2]].map((p) => judged.get(p.hop.peerId)!));
          const verdict = judged.get(cheat.hop.peerId);
          expect(verdict).toBeDefined();
          if (!verdict!.ok) caught = verdict;
        }
      } finally {
        await cheat.node.stop();
      }
      latency[text] = {
        requests: caught ? requests : null,
        checkedSteps: caught ? `${caught.checkedSteps.length} of ${caught.stepCount}` : '-',
        worstStep: caught?.worstStep ?? -1,
        match: caught?.worst?.worstMatch.matchFraction ?? NaN,
        valueError: +(caught?.worst?.worstValue.valueError ?? NaN).toPrecision(3),
      };
      expect(caught).toMatchObject({ ok: false, confirmed: true, layers: RANGES[1] });
      expect(honestVerdicts.map((v) => v?.ok)).toEqual(honestVerdicts.map(() => true));
      if (text === 'replay-old-output') expect(caught!.worstStep).toBeGreaterThanOrEqual(2);
    });
  }
});
