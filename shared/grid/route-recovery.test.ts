/**
 * The recovering route against scripted stages: each fake stage keeps a per-request running sum
 * (so its answer depends on every row the request sent before, as a KV cache does), and a stage
 * can fail, stall or slow down at a chosen step. The pipeline's answers must be those of the
 * unbroken route whatever happens, with the recovery reported.
 */
import { describe, expect, it } from 'vitest';
import type { HiddenFrame } from '../protocol/frame.ts';
import { GridApiError } from './client.ts';
import type { RouteHop } from './protocol.ts';
import { RouteBrokenError } from './route-link.ts';
import type { RouteLink, RouteStep } from './route-link.ts';
import type { HopRecord } from './stage-wire.ts';
import { createRecoveringRoute } from './route-recovery.ts';
import type { StandbyRoute } from './route-recovery.ts';
import { StageFailedError } from './stage-wire.ts';

/**
 * What a stage does from its fault's step on (for `steps` steps, else for good); `gone`: it stops
 * answering echoes from then (a closed or frozen tab).
 */
type Behaviour = ({ kind: 'fail'; error: () => Error } | { kind: 'stall' } | { kind: 'slow'; ms: number }) & { gone?: boolean; steps?: number };

const hop = (peerId: string, start: number, end: number): RouteHop => ({ peerId, addrs: [], layers: { start, end } });

/** A grid of fake stages: each adds its running sum of inputs to a row, per request. */
function fakeGrid() {
  const caches = new Map<string, Map<string, number>>();
  const faults = new Map<string, { atStep: number; behaviour: Behaviour }>();
  const silent = new Set<string>();
  const stepsOnStage = new Map<string, number>();
  const links: { hops: RouteHop[]; requests: string[] }[] = [];
  /** called as each stage takes a step (its count of steps so far) */
  const onStep: { hook?: (peerId: string, steps: number) => void } = {};

  function stage(peerId: string, requestId: string, rows: number[], position: number): { rows: number[]; ms: number } | 'stall' {
    const steps = stepsOnStage.get(peerId) ?? 0;
    stepsOnStage.set(peerId, steps + 1);
    onStep.hook?.(peerId, steps);
    const found = faults.get(peerId);
    const fault = found && (found.behaviour.steps === undefined || steps < found.atStep + found.behaviour.steps) ? found : undefined;
    if (fault && steps >= fault.atStep) {
      if (fault.behaviour.gone) silent.add(peerId);
      // A failure is one event (a silent stage stays failed: it is blamed and never asked again).
      if (fault.behaviour.kind === 'fail' && (steps === fault.atStep || silent.has(peerId))) throw fault.behaviour.error();
      if (fault.behaviour.kind === 'stall') return 'stall';
    }
    const cache = caches.get(peerId) ?? new Map<string, number>();
    caches.set(peerId, cache);
    if (position === 0) cache.set(requestId, 0);
    let sum = cache.get(requestId)!;
    const out = rows.map((r) => (sum += r) + 1);
    cache.set(requestId, sum);
    return { rows: out, ms: fault && steps >= fault.atStep && fault.behaviour.kind === 'slow' ? fault.behaviour.ms : 2 };
  }

  function openLink(hops: RouteHop[]): RouteLink {
    const opened = { hops, requests: [] as string[] };
    links.push(opened);
    return {
      hops,
      forward: () => Promise.reject(new Error('unused')),
      async step(frame: HiddenFrame): Promise<RouteStep> {
        if (!opened.requests.includes(frame.requestId)) opened.requests.push(frame.requestId);
        let rows = [...frame.data];
        const records: HopRecord[] = [];
        for (const h of hops) {
          const out = stage(h.peerId, frame.requestId, rows, frame.position);
          if (out === 'stall') return new Promise(() => undefined);
          rows = out.rows;
          records.push({ stageMs: out.ms, link: 'direct' });
        }
        await new Promise((r) => setTimeout(r, Math.max(...records.map((r) => r.stageMs))));
        return { frame: { ...frame, data: Float32Array.from(rows) }, hops: records };
      },
      end: () => Promise.resolve(),
      report: () => [],
      close: () => Promise.resolve(),
    };
  }
  return { faults, silent, links, openLink, stepsOnStage, onStep };
}

const ROUTE: StandbyRoute = { hops: [hop('a', 0, 2), hop('b', 2, 4)], standbys: [hop('a2', 0, 2), hop('b2', 2, 4)] };

function recovering(grid: ReturnType<typeof fakeGrid>, coordinator: (avoid: string[]) => Promise<StandbyRoute> = async () => ROUTE, minDeadlineMs = 60) {
  return createRecoveringRoute(
    { minDeadlineMs, setupMs: 200, firstStepMs: 200, probeTimeoutMs: 30 },
    {
      route: coordinator,
      openLink: grid.openLink,
      answers: async (h) => !grid.silent.has(h.peerId),
    },
  );
}

/** A recovering route on ROUTE without standbys, whose coordinator has no other stage for b's layers (2..3). */
function onlyBServes23(grid: ReturnType<typeof fakeGrid>, answers: (h: RouteHop, timeoutMs: number) => Promise<boolean>, times = { setupMs: 200, firstStepMs: 200 }) {
  return createRecoveringRoute({ minDeadlineMs: 60, probeTimeoutMs: 30, ...times }, {
    route: async (avoid) => {
      if (avoid.includes('b')) throw new GridApiError('layers 2..3 of 0..3 are served by no stage once 1 failed stage(s) are left out', { status: 503, code: 'no_route' });
      return { hops: ROUTE.hops, standbys: [] };
    },
    openLink: grid.openLink,
    answers,
  });
}

/** Runs a prompt of 3 rows then `decode` single-row steps; returns every answer's rows. */
async function run(route: ReturnType<typeof recovering>, requestId: string, decode: number): Promise<number[][]> {
  const answers: number[][] = [];
  let position = 0;
  const inputs = [[1, 2, 3], ...Array.from({ length: decode }, (_, i) => [10 + i])];
  for (const [step, rows] of inputs.entries()) {
    const frame: HiddenFrame = { requestId, step, position, dims: [1, rows.length, 1], data: Float32Array.from(rows) };
    const out = await route.forwardFrame!(frame);
    expect(out).toMatchObject({ requestId, step, position, dims: [1, rows.length, 1] });
    answers.push([...out.data]);
    position += rows.length;
  }
  await route.end(requestId);
  return answers;
}

async function unbroken(decode: number) {
  return run(recovering(fakeGrid()), 'baseline', decode);
}

describe('a recovering route', () => {
  it('answers as the unbroken route when a stage fails mid-request, replaying onto its standby', async () => {
    const grid = fakeGrid();
    grid.faults.set('b', { atStep: 5, behaviour: { kind: 'fail', error: () => new RouteBrokenError('the stream to b closed'), gone: true } });
    const route = recovering(grid);
    const track = route.track('r1');
    expect(await run(route, 'r1', 10)).toEqual(await unbroken(10));
    expect(track.recoveries).toHaveLength(1);
    expect(track.recoveries[0]).toMatchObject({ step: 5, reason: 'failed', swapped: ['b'], replayedRows: 3 + 5 });
    expect(track.stageRequests).toHaveLength(2);
    // Work beyond the request's tokens, which its voucher pays for: the rows before step 5, sent again.
    expect(track.replayedRows).toBe(3 + 4);
    expect(grid.links.at(-1)!.hops.map((h) => h.peerId)).toEqual(['a', 'b2']);
  });

  it('swaps the stage a StageLostError names even while it still answers', async () => {
    const grid = fakeGrid();
    grid.faults.set('a', { atStep: 2, behaviour: { kind: 'fail', error: () => new StageFailedError({ name: 'StageLostError', message: 'lost b', peerId: 'a', lost: 'b' }) } });
    const route = recovering(grid);
    const track = route.track('r');
    expect(await run(route, 'r', 4)).toEqual(await unbroken(4));
    expect(track.recoveries[0].swapped).toEqual(['b']);
  });

  it('swaps the stage a broken stream names without waiting for the route\'s echoes', async () => {
    const grid = fakeGrid();
    grid.faults.set('b', { atStep: 2, behaviour: { kind: 'fail', error: () => new RouteBrokenError('the result stream from b was reset', { peerId: 'b' }) } });
    let echoed = 0;
    const route = createRecoveringRoute(
      { minDeadlineMs: 60, setupMs: 200, firstStepMs: 200, probeTimeoutMs: 30 },
      {
        route: async () => ROUTE,
        openLink: grid.openLink,
        // Echoes that take their whole time (a gone stage still reachable for a while): never waited for here.
        answers: async () => {
          echoed += 1;
          await new Promise((r) => setTimeout(r, 1_000));
          return true;
        },
      },
    );
    const track = route.track('r');
    expect(await run(route, 'r', 4)).toEqual(await unbroken(4));
    expect(track.recoveries).toEqual([expect.objectContaining({ reason: 'failed', swapped: ['b'] })]);
    expect(echoed).toBe(0);
    expect(track.recoveries[0].ms).toBeLessThan(500);
  });

  it('notices a stage that stalls by the deadline measured from its round trips, and swaps it', async () => {
    const grid = fakeGrid();
    grid.faults.set('a', { atStep: 7, behaviour: { kind: 'stall', gone: true } });
    const route = recovering(grid);
    const track = route.track('r');
    expect(await run(route, 'r', 12)).toEqual(await unbroken(12));
    expect(track.recoveries).toEqual([expect.objectContaining({ reason: 'stalled', swapped: ['a'], step: 7 })]);
    // The deadline is a few decode steps (2-3 ms each here), floored at 60 ms: far below the 60 s step timeout.
    expect(track.recoveries[0].ms).toBeLessThan(1_000);
  });

  it('hedges a stalled step whose stages all still answer, on a route of standbys', async () => {
    const grid = fakeGrid();
    grid.faults.set('b', { atStep: 6, behaviour: { kind: 'stall' } });
    const route = recovering(grid);
    const track = route.track('r');
    expect(await run(route, 'r', 10)).toEqual(await unbroken(10));
    expect(track.recoveries).toEqual([expect.objectContaining({ reason: 'stalled', swapped: ['a', 'b'] })]);
    // Who answers for what: the request's first route, then the hedge on the standbys that won.
    expect(track.stageRequests).toEqual([{ id: 'r', stages: ['a', 'b'] }, { id: track.recoveries[0].stageRequestId, stages: ['a2', 'b2'] }]);
  });

  it('replays a stalled step on fresh streams through the same stages when none has a standby and all answer', async () => {
    const grid = fakeGrid();
    // A frame lost on a stream that never closed: b answers echoes, and its next stream serves.
    grid.faults.set('b', { atStep: 4, behaviour: { kind: 'stall', steps: 1 } });
    const route = recovering(grid, async () => ({ hops: ROUTE.hops, standbys: [] }));
    const track = route.track('r');
    expect(await run(route, 'r', 8)).toEqual(await unbroken(8));
    expect(track.recoveries).toEqual([expect.objectContaining({ reason: 'stalled', swapped: [] })]);
    expect(track.stageRequests.map((r) => r.stages)).toEqual([['a', 'b'], ['a', 'b']]);
  });

  it('gives up a measured route that stays stalled after its hedge failed too, a first step\'s time later', async () => {
    const grid = fakeGrid();
    // b stops carrying frames for good while answering echoes (a link that looks open); the
    // hedge's standby b2 loses its first frame: the old route must not be waited for forever.
    grid.faults.set('b', { atStep: 6, behaviour: { kind: 'stall' } });
    grid.faults.set('b2', { atStep: 0, behaviour: { kind: 'stall', steps: 1 } });
    const route = recovering(grid);
    const track = route.track('r');
    expect(await run(route, 'r', 10)).toEqual(await unbroken(10));
    expect(track.recoveries).toEqual([expect.objectContaining({ reason: 'stalled', step: 6, swapped: ['a', 'b'], cause: expect.stringMatching(/\(step 6 on a→b\); hedged on a2→b2, which failed too \(StageTimeoutError: no result within 200 ms \(replay on a2→b2\)\)/) })]);
    // A decode deadline (60 ms), the hedge's (200 ms), the grace (200 ms), a second hedge: not the link's 60 s.
    expect(track.recoveries[0].ms).toBeLessThan(2_000);
  });

  it('still takes a cold route\'s first step that answers after its hedge failed', async () => {
    const grid = fakeGrid();
    // Nothing measured yet: the prompt's first step (a cold tab) outlasts its deadline and the
    // hedge's, whose standby is as slow; it answers on the old route, and no recovery is needed.
    grid.faults.set('a', { atStep: 0, behaviour: { kind: 'slow', ms: 600, steps: 1 } });
    grid.faults.set('a2', { atStep: 0, behaviour: { kind: 'slow', ms: 900, steps: 1 } });
    const route = recovering(grid);
    const track = route.track('r');
    expect(await run(route, 'r', 4)).toEqual(await unbroken(4));
    expect(track.recoveries).toEqual([]);
    expect(track.stageRequests).toHaveLength(2);
  });

  it('swaps a stage whose step time jumps, before it drags every token', async () => {
    const grid = fakeGrid();
    grid.faults.set('a', { atStep: 6, behaviour: { kind: 'slow', ms: 130 } });
    // A deadline well above the slow steps: this stage is slow, not stalled.
    const route = recovering(grid, undefined, 1_000);
    const track = route.track('r');
    expect(await run(route, 'r', 14)).toEqual(await unbroken(14));
    expect(track.recoveries).toEqual([expect.objectContaining({ reason: 'slow', swapped: ['a'] })]);
    // Two slow steps, then the swap: the rest ran on the standby.
    expect(grid.stepsOnStage.get('a')).toBeLessThanOrEqual(9);
  });

  it('reports a swap whose replay fails too as one recovery, for the first cause, timed from it', async () => {
    const grid = fakeGrid();
    grid.faults.set('a', { atStep: 6, behaviour: { kind: 'slow', ms: 130 } });
    // The standby taking over from slow a dies on the replay itself: its own standby takes over.
    grid.faults.set('a2', { atStep: 0, behaviour: { kind: 'fail', error: () => new RouteBrokenError('closed'), gone: true } });
    const route = recovering(grid, async (avoid) => (avoid.length === 0 ? ROUTE : { hops: [hop('a3', 0, 2), hop('b', 2, 4)], standbys: [] }), 1_000);
    const track = route.track('r');
    expect(await run(route, 'r', 14)).toEqual(await unbroken(14));
    expect(track.recoveries).toEqual([expect.objectContaining({ reason: 'slow', swapped: ['a', 'a2'], cause: expect.stringMatching(/turned slow; then RouteBrokenError: closed/) })]);
  });

  // a stalls once while busy (its echo late too): it is swapped for a2, its only standby. a is
  // well again by the time a2 turns slow: a2 is swapped back for it. When a stalls on the prompt
  // itself, the request moves to a2 before any step was measured, so no route it ran on lists a
  // as a standby; the client's earlier route does.
  for (const [stallAt, when] of [[3, 'earlier only for a late echo'], [0, 'at its very first step']] as const) {
    it(`swaps a slow stage for one its request blamed ${when}, once that answers again`, async () => {
      const grid = fakeGrid();
      grid.faults.set('a', { atStep: stallAt, behaviour: { kind: 'stall', steps: 1 } });
      grid.silent.add('a');
      grid.onStep.hook = (peerId, steps) => void (peerId === 'a2' && steps === 5 && grid.silent.delete('a'));
      grid.faults.set('a2', { atStep: 4, behaviour: { kind: 'slow', ms: 130 } });
      const route = recovering(grid, undefined, 1_000);
      const track = route.track('r');
      expect(await run(route, 'r', 16)).toEqual(await unbroken(16));
      expect(track.recoveries).toEqual([expect.objectContaining({ reason: 'stalled', swapped: ['a'], step: stallAt }), expect.objectContaining({ reason: 'slow', swapped: ['a2'] })]);
    });
  }

  it('gives a long replay that stalls a deadline of a few decode steps, not one per few rows', async () => {
    const grid = fakeGrid();
    grid.faults.set('b', { atStep: 60, behaviour: { kind: 'fail', error: () => new RouteBrokenError('closed'), gone: true } });
    // b's standby goes silent on the replay of 63 rows itself: the coordinator's next route takes over.
    grid.faults.set('b2', { atStep: 0, behaviour: { kind: 'stall', gone: true } });
    const route = recovering(grid, async (avoid) => (avoid.length === 0 ? ROUTE : { hops: [hop('a', 0, 2), hop('b3', 2, 4)], standbys: [] }));
    const track = route.track('r');
    expect(await run(route, 'r', 62)).toEqual(await unbroken(62));
    // The decode deadline is 60 ms here: 63 rows get two of them, so the 200 ms set-up floor holds.
    expect(track.recoveries).toEqual([expect.objectContaining({ swapped: ['b', 'b2'], cause: expect.stringMatching(/then StageTimeoutError: no result within 200 ms \(replay on a→b2\)/) })]);
  });

  it('survives two faults in one request', async () => {
    const grid = fakeGrid();
    grid.faults.set('b', { atStep: 3, behaviour: { kind: 'fail', error: () => new RouteBrokenError('closed'), gone: true } });
    grid.faults.set('a', { atStep: 8, behaviour: { kind: 'stall', gone: true } });
    const route = recovering(grid);
    const track = route.track('r');
    expect(await run(route, 'r', 12)).toEqual(await unbroken(12));
    expect(track.recoveries.map((r) => r.swapped)).toEqual([['b'], ['a']]);
  });

  it('survives more faults in one long request than one step may meet, each step answered in between', async () => {
    const grid = fakeGrid();
    // Every third step a's stream breaks, while every stage still answers: a new stream, a replay.
    grid.onStep.hook = (peerId, steps) => {
      if (peerId === 'a' && steps % 3 === 2) throw new RouteBrokenError('the stream to a closed');
    };
    const route = recovering(grid);
    const track = route.track('r');
    expect(await run(route, 'r', 30)).toEqual(await unbroken(30));
    expect(track.recoveries.length).toBeGreaterThan(8);
  });

  it('fails a step that no route answers after a bounded number of tries', async () => {
    const grid = fakeGrid();
    grid.onStep.hook = (peerId, steps) => {
      if (peerId === 'a' && steps >= 4) throw new RouteBrokenError('the stream to a closed');
    };
    const route = recovering(grid);
    await expect(run(route, 'r', 10)).rejects.toThrow(RouteBrokenError);
    // The first step failed, then 8 tries again, each on a new stage request: 9 in all.
    expect(grid.stepsOnStage.get('a')).toBe(4 + 9);
  });

  it('asks the coordinator, avoiding the failed stages, when no standby is left', async () => {
    const grid = fakeGrid();
    grid.faults.set('b', { atStep: 4, behaviour: { kind: 'fail', error: () => new RouteBrokenError('closed'), gone: true } });
    const asked: string[][] = [];
    const route = recovering(grid, async (avoid) => {
      asked.push(avoid);
      return avoid.length === 0 ? { hops: ROUTE.hops, standbys: [] } : { hops: [hop('a', 0, 2), hop('c', 2, 4)], standbys: [] };
    });
    expect(await run(route, 'r', 6)).toEqual(await unbroken(6));
    expect(asked).toEqual([[], ['b']]);
  });

  it('fails at once, naming the layers, when no stage serves them any more', async () => {
    const grid = fakeGrid();
    grid.faults.set('b', { atStep: 4, behaviour: { kind: 'fail', error: () => new RouteBrokenError('closed'), gone: true } });
    // b's tab has left: the coordinator has no route for layers 2..3 from then on, avoided stages or not.
    let asked = 0;
    const route = recovering(grid, async () => {
      if (asked++ === 0) return { hops: ROUTE.hops, standbys: [] };
      throw new GridApiError('layers 2..3 of 0..3 are served by no stage once 1 failed stage(s) are left out', { status: 503, code: 'no_route' });
    });
    const started = performance.now();
    await expect(run(route, 'r', 6)).rejects.toMatchObject({ name: 'LayersUncoveredError', message: expect.stringMatching(/layers 2\.\.3 .* served by no stage/) });
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it('never tries a stage that still does not answer again, even when the others for its layers were avoided', async () => {
    const grid = fakeGrid();
    // a freezes (the coordinator still lists it); its standby a2 then breaks a stream once but answers.
    grid.faults.set('a', { atStep: 5, behaviour: { kind: 'stall', gone: true } });
    grid.faults.set('a2', { atStep: 0, behaviour: { kind: 'fail', error: () => new RouteBrokenError('the stream to a2 broke', { peerId: 'a2' }) } });
    const noRoute = () => new GridApiError('layers 0..1 of 0..3 are served by no stage once 2 failed stage(s) are left out', { status: 503, code: 'no_route' });
    const route = recovering(grid, async (avoid) => {
      if (avoid.includes('a2')) throw noRoute();
      return avoid.includes('a') ? { hops: [hop('a2', 0, 2), hop('b', 2, 4)], standbys: [] } : ROUTE;
    });
    const track = route.track('r');
    expect(await run(route, 'r', 8)).toEqual(await unbroken(8));
    // a2 answers an echo and is tried again; a, silent, never gets a frame after the one it froze on.
    expect(grid.stepsOnStage.get('a')).toBe(6);
    expect(track.recoveries).toEqual([expect.objectContaining({ step: 5, swapped: ['a', 'a2'] })]);
  });

  it('tries a stage that went silent on a cold route again, echo or not, when no other serves its layers', async () => {
    const grid = fakeGrid();
    // A new client's first step: a stalls (a loaded machine, a dial still under way) and its
    // echo is not answered yet; it is the only stage for its layers and serves the retry.
    grid.faults.set('a', { atStep: 0, behaviour: { kind: 'stall', steps: 1 } });
    grid.silent.add('a');
    const route = recovering(grid, async (avoid) => {
      if (avoid.includes('a')) throw new GridApiError('layers 0..1 of 0..3 are served by no stage once 1 failed stage(s) are left out', { status: 503, code: 'no_route' });
      return { hops: ROUTE.hops, standbys: [] };
    });
    expect(await run(route, 'r', 4)).toEqual(await unbroken(4));
  });

  it('tries a stage blamed only for a slow echo again when no other serves its layers', async () => {
    const grid = fakeGrid();
    // One echo goes unanswered (a busy machine), then the stage answers again.
    let busy = true;
    const answers = async (h: RouteHop) => !(h.peerId === 'b' && busy && !(busy = false));
    grid.faults.set('b', { atStep: 4, behaviour: { kind: 'fail', error: () => new RouteBrokenError('the stream broke') } });
    const route = onlyBServes23(grid, answers);
    const track = route.track('r');
    expect(await run(route, 'r', 6)).toEqual(await unbroken(6));
    expect(track.recoveries).toHaveLength(1);
  });

  it('waits for the only stage of some layers as long as a route\'s first step may take, when it was only busy', async () => {
    const grid = fakeGrid();
    // b stalls one step and its echoes take 250 ms (a loaded machine): longer than a first step's
    // setup time, shorter than a cold route's first step.
    grid.faults.set('b', { atStep: 6, behaviour: { kind: 'stall', steps: 1 } });
    const answers = (h: RouteHop, timeoutMs: number) =>
      new Promise<boolean>((resolve) => (h.peerId === 'b' ? setTimeout(() => resolve(timeoutMs >= 250), Math.min(250, timeoutMs)) : resolve(true)));
    const route = onlyBServes23(grid, answers, { setupMs: 100, firstStepMs: 400 });
    const track = route.track('r');
    expect(await run(route, 'r', 9)).toEqual(await unbroken(9));
    expect(track.recoveries).toEqual([expect.objectContaining({ step: 6, reason: 'stalled', swapped: ['b'] })]);
    // The request went on as a new stage request, replayed on the same stages.
    expect(track.stageRequests).toHaveLength(2);
    expect(track.recoveries[0].stageRequestId).toBe(track.stageRequests[1].id);
  });

  it('passes a refusal of the request itself on instead of swapping stages for it', async () => {
    const grid = fakeGrid();
    grid.faults.set('a', { atStep: 1, behaviour: { kind: 'fail', error: () => new StageFailedError({ name: 'FrameError', message: 'positions exceed the context', peerId: 'a' }) } });
    const route = recovering(grid);
    await expect(run(route, 'r', 3)).rejects.toMatchObject({ name: 'StageFailedError', message: expect.stringMatching(/FrameError/) });
  });
});
