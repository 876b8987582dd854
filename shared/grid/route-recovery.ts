/**
 * Generation that survives its route: a pipeline stage (StageLink) over route links that swaps
 * out a stage which leaves, stalls or slows down, mid-request, without the pipeline noticing.
 *
 * The client keeps what a replacement route needs to rebuild a request's KV caches: the hidden
 * rows it sent (its tokens, embedded), until the request ends. When a step fails, the request
 * goes on as a new stage request on a new route whose first step is a replay: one prefill of
 * every row so far plus the step's own. Its result's last rows are the step's answer, so the
 * sampler sees the same logits and the text is the unbroken run's, token for token. Every stage
 * of the new route rebuilds (the survivors too: their old request was ended, and they commit to
 * it): one prefill through the route costs little more than one through the replaced stage
 * alone, and needs no stage to keep outputs or to re-splice a running request.
 *
 * Detection, each well under a second of the event:
 *  - a route error: a stream that closed (a closed tab, a dropped link), a stage that refused,
 *    or a stage that lost its link to the next (StageLostError, naming the lost peer);
 *  - a missed deadline, from this route's measured round trips (step-timing.ts): a frozen tab,
 *    a killed browser, a silently cut network send nothing at all;
 *  - a slow stage: one whose time per step jumps to several times its median, two steps
 *    running (step-timing.ts), is swapped before the next step (a throttled link, a background tab).
 * Who to blame: the stages that no longer answer an echo in time (probeTimeoutMs), and the peer an
 * error names. A deadline missed with every stage answering is hedged: the step is replayed on a
 * route of standbys while the slow route may still answer; the first answer wins.
 *
 * The replacement comes from the route's standbys (stages that serve exactly one hop's layers,
 * weights loaded, links probed) or, when none is left, from the coordinator with the blamed
 * stages avoided. When no stage serves some layer any more, the request fails at once with
 * LayersUncoveredError naming the layers.
 */
import { InfermeshError } from '../errors.ts';
import type { HiddenFrame } from '../protocol/frame.ts';
import type { StageLink } from '../runtime/pipeline.ts';
import { sameRange } from '../runtime/stage.ts';
import type { RouteHop } from './protocol.ts';
import { ROUTE_ERRORS, StageTimeoutError } from './route-link.ts';
import type { RouteLink, RouteStep } from './route-link.ts';
import { StageFailedError } from './stage-wire.ts';
import { createStepTiming } from './step-timing.ts';

/** No stage serves some layers any more (they left, or failed this request): nothing to swap in. */
export class LayersUncoveredError extends InfermeshError {
  override name = 'LayersUncoveredError';
}

/** A route with the standbys that can replace its hops. */
export interface StandbyRoute {
  hops: RouteHop[];
  standbys: RouteHop[];
}

export interface Recovery {
  /** the pipeline's step at which the route was replaced */
  step: number;
  reason: 'failed' | 'stalled' | 'slow';
  /** the stages swapped out (empty: the same stages, on fresh streams) */
  swapped: string[];
  /** what went wrong, for people */
  cause: string;
  /** rows replayed as one prefill on the new route */
  replayedRows: number;
  /** each stage's milliseconds on the replay (its hop records): what rebuilding the caches cost where */
  replayStageMs: number[];
  /** the replay's round trip on the new route (the first answer's, for a hedge) */
  replayMs: number;
  /** from noticing the fault to the step's answer on the new route */
  ms: number;
  /** the stage request the step was answered on: the one its stages replayed and commit to */
  stageRequestId: string;
}

/** One route a request ran on (or a hedge tried): the id its stages knew the request by, and who they were. */
export interface StageRequest {
  id: string;
  /** the stages' peer ids, in route order: each commits to its part of `id` once it ends */
  stages: string[];
}

/** What a caller learns of one request: filled in as it runs. */
export interface RequestTrack {
  /** the ids the stages knew this request by, one per route it ran on or a hedge tried */
  stageRequests: StageRequest[];
  recoveries: Recovery[];
  /** rows sent again as replays, on every route tried (a hedge's too): work the request caused beyond its tokens */
  replayedRows: number;
}

export interface RecoveringRouteOptions {
  /** the slowest any step may be (default 60 s), whatever was measured */
  stepTimeoutMs?: number;
  /** a route's first step (its streams opening and the prompt or a replay) before any decode step was measured (default 5 s) */
  firstStepMs?: number;
  /** a route's first step once decode steps were measured: at least this (default 1.5 s; its links are dialled ahead) */
  setupMs?: number;
  /** a decode step's deadline is never shorter than this (default 400 ms: a busy machine's hiccup is no fault) */
  minDeadlineMs?: number;
  /** how long a stage has to answer an echo before it is blamed (default 300 ms: a live tab answers in a few) */
  probeTimeoutMs?: number;
  /**
   * route failures one step may meet, in a row, before its error is thrown (default 8). Per step,
   * not per request: a long generation on a churning grid may recover many times, each step
   * answered in between, while a step that no route answers still fails in bounded time.
   */
  maxStepFailures?: number;
}

export interface RecoveringRouteDeps {
  /** the coordinator's route leaving out `avoid` (its NoRouteError arrives as a GridApiError with code 'no_route') */
  route(avoid: string[]): Promise<StandbyRoute>;
  /** a route link over `hops` */
  openLink(hops: RouteHop[]): RouteLink;
  /** whether a stage answers an echo within `timeoutMs` (probe.ts answers) */
  answers(hop: RouteHop, timeoutMs: number): Promise<boolean>;
  /** dials a stage ahead of need, so a swap costs a replay and not a connection */
  warm?(hop: RouteHop): void;
  now?(): number;
}

export interface RecoveringRoute extends StageLink {
  /** the route new requests start on (asked for on first use) */
  current(): Promise<{ route: StandbyRoute; link: RouteLink }>;
  /** that route's link, null before the first request */
  currentLink(): RouteLink | null;
  /** Starts keeping `requestId`'s stage ids and recoveries in the returned track. */
  track(requestId: string): RequestTrack;
  close(): Promise<void>;
}

const newTrack = (): RequestTrack => ({ stageRequests: [], recoveries: [], replayedRows: 0 });

/** Stages remembered as suspects (blamed for silence), and stages' addresses, at most; the oldest is forgotten first. */
const MAX_SUSPECTS = 256;
/** A route older than this is asked for again when a request starts on it. */
const ROUTE_REFRESH_MS = 5_000;

interface Active {
  route: StandbyRoute;
  link: RouteLink;
  /** decode round trips on this route, newest last */
  roundTrips: number[];
  /** attempts still on this link: it is closed when none is and new requests start elsewhere */
  users: number;
  /** when the coordinator last gave this route (-Infinity: assembled by a recovery, asked for again by the next request) */
  since: number;
}

interface Attempt {
  active: Active;
  stageRequestId: string;
  /** steps sent on this stage request (0 until the replay or the first step went) */
  steps: number;
}

interface RequestState {
  track: RequestTrack;
  /** the hidden rows of every step answered so far, in order */
  rows: Float32Array[];
  rowCount: number;
  attempt: Attempt;
  /** stages failed or stalled during this request: never routed through again by it */
  avoid: Set<string>;
  /** a stage found slow: swapped before the next step */
  swapNext?: string;
  /** consecutive slow steps per stage */
  slowSteps: Map<string, number>;
  /** route failures of the step in hand, answered or not: it fails after maxStepFailures of them */
  failures: number;
  /** the latest failure's name and message */
  lastFault?: string;
}

/** `pending`, given up `graceMs` after `hedge` failed (never, for Infinity). */
function givenUpAfter<T>(pending: Promise<T>, hedge: Promise<unknown>, graceMs: number): Promise<T> {
  if (graceMs === Infinity) return pending;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    hedge.catch(() => {
      timer = setTimeout(() => reject(new StageTimeoutError(`no result within ${Math.round(graceMs)} ms of the hedge failing`)), graceMs);
    });
  });
  return Promise.race([pending, expired]).finally(() => clearTimeout(timer));
}

/** Refusals that are the request's own fault (a bad frame): another route would refuse them too. */
const REQUEST_FAULTS: ReadonlySet<string> = new Set(['FrameError', 'WrongRequestError', 'StageMessageError']);
const isRouteError = (err: unknown) => ROUTE_ERRORS.includes((err as Error)?.name) && !(err instanceof StageFailedError && REQUEST_FAULTS.has(err.failure.name));
/** A route as people read it in a recovery's cause: its stages' short ids in order. */
const routeName = (hops: readonly RouteHop[]) => hops.map((h) => h.peerId.slice(-6)).join('→');
const sameLayers = (a: RouteHop, b: RouteHop) => sameRange(a.layers, b.layers);

export function createRecoveringRoute(options: RecoveringRouteOptions, deps: RecoveringRouteDeps): RecoveringRoute {
  const stepTimeoutMs = options.stepTimeoutMs ?? 60_000;
  const firstStepMs = Math.min(options.firstStepMs ?? 5_000, stepTimeoutMs);
  const setupMs = Math.min(options.setupMs ?? 1_500, firstStepMs);
  const timing = createStepTiming({ stepTimeoutMs, firstStepMs, minDeadlineMs: options.minDeadlineMs ?? 400, setupMs });
  const probeTimeoutMs = options.probeTimeoutMs ?? 300;
  const maxStepFailures = options.maxStepFailures ?? 8;
  const now = deps.now ?? (() => performance.now());
  const requests = new Map<string, RequestState>();
  const tracks = new Map<string, RequestTrack>();
  const links = new Set<RouteLink>();
  /**
   * Stages blamed only for not answering an echo in time (a busy one may answer later), each
   * with whether its route was cold then (nothing measured: a tab still compiling its engine,
   * a client still dialling it) rather than running (a tab that froze or hung mid-generation).
   */
  const suspects = new Map<string, { cold: boolean }>();
  /** the stages of every route given, by peer id: how to reach an avoided one to see whether it answers again */
  const known = new Map<string, RouteHop>();
  let active: Active | null = null;

  /** Dials a route's stages ahead and keeps their addresses, newest last (the oldest forgotten past MAX_SUSPECTS). */
  const reach = (route: StandbyRoute) => {
    for (const hop of [...route.hops, ...route.standbys]) {
      deps.warm?.(hop);
      known.delete(hop.peerId);
      known.set(hop.peerId, hop);
      if (known.size > MAX_SUSPECTS) known.delete(known.keys().next().value!);
    }
  };

  /**
   * A link over `route`; `from`, the route it replaces, lends its measured round trips to the
   * first deadlines. `assembled`: a recovery made it (its standbys used up), so the next request asks afresh.
   */
  const activate = (route: StandbyRoute, from?: Active, assembled = false): Active => {
    const link = deps.openLink(route.hops);
    links.add(link);
    reach(route);
    return { route, link, roundTrips: [...(from?.roundTrips ?? [])], users: 0, since: assembled ? -Infinity : now() };
  };

  /** Closes a link nobody uses any more and new requests no longer start on. */
  const retire = (on: Active) => {
    if (on.users > 0 || on === active || !links.delete(on.link)) return;
    void on.link.close().catch(() => undefined);
  };

  const stageRequest = (attempt: Attempt): StageRequest => ({ id: attempt.stageRequestId, stages: attempt.active.route.hops.map((h) => h.peerId) });

  const attemptOn = (on: Active, stageRequestId: string): Attempt => {
    on.users += 1;
    return { active: on, stageRequestId, steps: 0 };
  };

  /** Ends an attempt off the step's path (its stages commit to what they served); a link nobody uses any more is closed. */
  const release = (attempt: Attempt): Promise<void> => {
    const on = attempt.active;
    on.users -= 1;
    const ended = Promise.resolve(on.link.end(attempt.stageRequestId)).then(() => undefined, () => undefined);
    return ended.then(() => retire(on));
  };

  /**
   * The route new requests start on. Asked for again when older than ROUTE_REFRESH_MS (tabs come,
   * go and are re-placed, and a request should not start on a stage that has moved on), and
   * after a recovery assembled it (its standbys were used up).
   */
  const current = async (): Promise<Active> => (active && now() - active.since < ROUTE_REFRESH_MS ? active : refresh(active));

  /**
   * The coordinator's route now; the link of `from` is kept when its stages are the same. A
   * server that cannot answer leaves the route as it was: its stages may well still serve. So
   * does one that sees no stage at all (it lost its relay, and every tab with it) while every
   * stage of the route still answers an echo; if one does not, the layers are gone.
   */
  async function refresh(from: Active | null): Promise<Active> {
    let route: StandbyRoute;
    try {
      route = await askCoordinator(new Set());
    } catch (err) {
      if (!from || ((err as Error).name === 'LayersUncoveredError' && (await silentHops(from.route)).length > 0)) throw err;
      from.since = now();
      return from;
    }
    const same = from && route.hops.length === from.route.hops.length && route.hops.every((h, i) => h.peerId === from.route.hops[i].peerId);
    // The same stages keep their link; standbys that joined since, and links that dropped, are dialled now.
    if (same) reach(route);
    const next = same ? Object.assign(from, { route, since: now() }) : activate(route, from ?? undefined);
    if (active === from) active = next;
    if (from && !same) retire(from);
    return next;
  }

  /** The hops that do not answer an echo within probeTimeoutMs. */
  async function silentHops(route: StandbyRoute): Promise<RouteHop[]> {
    const silent = await Promise.all(route.hops.map(async (hop) => ((await deps.answers(hop, probeTimeoutMs)) ? [] : [hop])));
    return silent.flat();
  }

  /** The stage ids a step would replace: those that stopped answering, and the one an error names. */
  async function blame(on: Active, err: unknown): Promise<Set<string>> {
    const route = on.route;
    const named = err instanceof StageFailedError ? (err.failure.lost ?? err.failure.peerId) : (err as { peerId?: string }).peerId;
    const namedHop = route.hops.find((h) => h.peerId === named);
    // A failure that names its stage (a stream to it that broke, a stage that lost its link to
    // it) is blamed on that stage at once: echoing the route first would add an echo's timeout
    // to the recovery whenever the gone stage is still echoed.
    if (namedHop && !(err instanceof StageTimeoutError)) return new Set([namedHop.peerId]);
    // A step that went overdue had its stages echoed already, as its deadline neared (see send).
    const silent = await ((err as { silent?: Promise<RouteHop[]> }).silent ?? silentHops(route));
    for (const hop of silent) {
      suspects.set(hop.peerId, { cold: !timing.measured(on.roundTrips) });
      if (suspects.size > MAX_SUSPECTS) suspects.delete(suspects.keys().next().value!);
    }
    const blamed = new Set(silent.map((h) => h.peerId));
    if (namedHop) blamed.add(namedHop.peerId);
    return blamed;
  }

  /** A route without `avoid`: its standbys swapped in where they can be, else the coordinator's. */
  async function reroute(route: StandbyRoute, avoid: Set<string>): Promise<StandbyRoute> {
    const standbys = route.standbys.filter((s) => !avoid.has(s.peerId));
    const hops: RouteHop[] = [];
    for (const hop of route.hops) {
      if (!avoid.has(hop.peerId)) hops.push(hop);
      else {
        const standby = standbys.find((s) => sameLayers(s, hop) && !hops.includes(s));
        if (!standby) return askCoordinator(avoid);
        hops.push(standby);
      }
    }
    return { hops, standbys: standbys.filter((s) => !hops.includes(s)) };
  }

  async function askCoordinator(avoid: Set<string>): Promise<StandbyRoute> {
    try {
      return await deps.route([...avoid]);
    } catch (err) {
      if ((err as { code?: string }).code !== 'no_route') throw err;
      // A stage blamed only for not answering an echo in time may just have been busy (a loaded
      // machine, a long GC), and one that failed outright may have met a passing fault (a link
      // that dropped, a dial that timed out): with no other stage for its layers, it is tried
      // again rather than failing the request for want of it. One that went silent on a cold
      // route is tried as it is (a busy machine's cold tabs, or a client still dialling them,
      // can take seconds to echo). Any other must answer an echo now, given as long as a cold
      // route's first step (its link may need dialling again, and a tab on a loaded machine was
      // seen silent for 2 s): a tab that froze mid-generation, which the coordinator still lists,
      // is not tried, or every replay through it would stall; the request then fails within
      // seconds. A tab that left is no longer listed, so the request fails at once.
      // maxStepFailures bounds the retries.
      const alive = await Promise.all([...avoid].map(async (id) => suspects.get(id)?.cold || (known.has(id) && (await deps.answers(known.get(id)!, firstStepMs)))));
      const revived = [...avoid].filter((_, i) => alive[i]);
      if (revived.length === 0) throw new LayersUncoveredError((err as Error).message, { cause: err });
      for (const id of revived) {
        avoid.delete(id);
        suspects.delete(id);
      }
      return askCoordinator(avoid);
    }
  }

  /** The route a request moves to once `avoid` is left out; the client's route for new requests too. */
  async function moveTo(from: Active, avoid: Set<string>): Promise<Active> {
    if (active && active !== from && !active.route.hops.some((h) => avoid.has(h.peerId))) return active;
    const next = activate(await reroute(from.route, avoid), from, true);
    if (active === from || active === null) active = next;
    return next;
  }

  /** Moves the request to a new stage request on `on`; the old one is released. */
  function switchTo(state: RequestState, on: Active): void {
    const next = attemptOn(on, crypto.randomUUID());
    void release(state.attempt);
    state.track.stageRequests.push(stageRequest(next));
    state.attempt = next;
  }

  /** Every row so far and the step's own, as one prefill at position 0: what a new route rebuilds its caches from. */
  function replayFrame(state: RequestState, frame: HiddenFrame, stageRequestId: string): HiddenFrame {
    const width = frame.dims[2];
    const rows = state.rowCount + frame.dims[1];
    const data = new Float32Array(rows * width);
    let at = 0;
    for (const r of [...state.rows, frame.data]) {
      data.set(r, at);
      at += r.length;
    }
    return { requestId: stageRequestId, step: 0, position: 0, dims: [1, rows, width], data };
  }

  /** Sends the step on the attempt's route: a replay when the attempt is new and rows came before. */
  async function send(state: RequestState, attempt: Attempt, frame: HiddenFrame): Promise<{ step: RouteStep; ms: number }> {
    const replay = attempt.steps === 0 && state.rowCount > 0;
    const out = replay
      ? replayFrame(state, frame, attempt.stageRequestId)
      : { ...frame, requestId: attempt.stageRequestId, step: attempt.steps };
    if (replay) state.track.replayedRows += state.rowCount;
    const timeout = timing.deadline(attempt.active.roundTrips, attempt.steps === 0, out.dims[1]);
    const t0 = now();
    const pending = attempt.active.link.step(out);
    attempt.steps += 1;
    let timer: ReturnType<typeof setTimeout> | undefined;
    // A step still unanswered one echo's time before its deadline has its stages echoed then, so
    // that when the deadline passes, who went silent is known at once (blame).
    let silent: Promise<RouteHop[]> | undefined;
    const echoTimer = setTimeout(() => {
      silent = silentHops(attempt.active.route);
      silent.catch(() => undefined);
    }, Math.max(0, timeout - probeTimeoutMs));
    const overdue = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new StageTimeoutError(`no result within ${Math.round(timeout)} ms (${replay ? 'replay' : `step ${frame.step}`} on ${routeName(attempt.active.route.hops)})`), { pending, silent })), timeout);
    });
    try {
      return { step: await Promise.race([pending, overdue]), ms: now() - t0 };
    } finally {
      clearTimeout(timer);
      clearTimeout(echoTimer);
    }
  }

  /** Notes a decode step's times; marks a stage that has turned slow for a swap. */
  function observe(state: RequestState, attempt: Attempt, answer: RouteStep, ms: number, rows: number) {
    if (rows !== 1 || attempt.steps <= 1) return;
    const route = attempt.active.route;
    timing.noteRoundTrip(attempt.active.roundTrips, ms);
    const slow = timing.slowStages(route.hops.map((h) => h.peerId), route.hops.map((_, i) => answer.hops[i]?.stageMs), state.slowSteps);
    for (const hop of route.hops) if (slow.includes(hop.peerId) && spares(state, route, hop, true).length > 0) state.swapNext = hop.peerId;
  }

  /**
   * The stages that could take `hop`'s place in this request: any of the client's routes gave
   * them (not only this request's: one whose standbys were all blamed at its first step would
   * have none), off the route and not avoided, or, `withSuspects`, avoided only for an echo that
   * came late (a busy tab may be well again).
   */
  function spares(state: RequestState, route: StandbyRoute, hop: RouteHop, withSuspects = false): RouteHop[] {
    return [...known.values()].filter(
      (s) => sameLayers(s, hop) && !route.hops.some((h) => h.peerId === s.peerId) && (!state.avoid.has(s.peerId) || (withSuspects && suspects.has(s.peerId))),
    );
  }

  /** A slow stage is swapped only for a standby that answers: a suspect that echoes in time again is avoided no longer. */
  async function reviveSpares(state: RequestState, route: StandbyRoute, slow: string): Promise<void> {
    const hop = route.hops.find((h) => h.peerId === slow);
    if (!hop || spares(state, route, hop).length > 0) return;
    for (const s of spares(state, route, hop, true)) {
      if (!(await deps.answers(s, probeTimeoutMs))) continue;
      state.avoid.delete(s.peerId);
      suspects.delete(s.peerId);
    }
  }

  /** The step's answer in the pipeline's terms: its own rows (a replay answers for every row). */
  function answerFor(frame: HiddenFrame, result: HiddenFrame): HiddenFrame {
    const rows = frame.dims[1];
    const width = result.dims[2];
    const data = result.dims[1] === rows ? result.data : result.data.subarray((result.dims[1] - rows) * width);
    return { requestId: frame.requestId, step: frame.step, position: frame.position, dims: [1, rows, width], data };
  }

  async function forwardFrame(frame: HiddenFrame): Promise<HiddenFrame> {
    let state = requests.get(frame.requestId);
    if (!state) {
      const track = tracks.get(frame.requestId) ?? newTrack();
      state = { track, rows: [], rowCount: 0, attempt: attemptOn(await current(), frame.requestId), avoid: new Set(), slowSteps: new Map(), failures: 0 };
      track.stageRequests.push(stageRequest(state.attempt));
      requests.set(frame.requestId, state);
    }
    if (frame.position !== state.rowCount) throw new InfermeshError(`request ${frame.requestId} is at position ${state.rowCount}, not ${frame.position}`);
    try {
      return await stepThrough(state, frame);
    } catch (err) {
      // Which failure left the layers without a stage, for the people reading the error.
      if (err instanceof LayersUncoveredError && state.lastFault) err.message += ` (after ${state.lastFault})`;
      throw err;
    }
  }

  /** Answers one step of the request, moving it to another route as often as its route fails. */
  async function stepThrough(state: RequestState, frame: HiddenFrame): Promise<HiddenFrame> {
    let fault: { at: number; reason: Recovery['reason']; cause: string; swapped: string[] } | undefined;
    if (state.swapNext) {
      const slow = state.swapNext;
      state.swapNext = undefined;
      fault = { at: now(), reason: 'slow', cause: `stage ${slow} turned slow`, swapped: [slow] };
      await reviveSpares(state, state.attempt.active.route, slow);
      state.avoid.add(slow);
      switchTo(state, await moveTo(state.attempt.active, state.avoid));
    }
    for (;;) {
      const attempt = state.attempt;
      let answer: RouteStep;
      let stepMs: number;
      try {
        const { step, ms } = await send(state, attempt, frame);
        answer = step;
        stepMs = ms;
        observe(state, attempt, step, ms, frame.dims[1]);
      } catch (err) {
        if (!isRouteError(err) || ++state.failures > maxStepFailures) throw err;
        const at = now();
        const blamed = await blame(attempt.active, err);
        const stalled = err instanceof StageTimeoutError && (err as { pending?: Promise<RouteStep> }).pending;
        // A second fault in the same step (the replay after a swap failing too) adds to the first: one recovery, timed from the first.
        const cause = `${(err as Error).name}: ${(err as Error).message}`;
        state.lastFault = cause;
        fault = fault
          ? { ...fault, cause: `${fault.cause}; then ${cause}`, swapped: [...new Set([...fault.swapped, ...blamed])] }
          : { at, reason: stalled ? 'stalled' : 'failed', cause, swapped: [...blamed] };
        for (const b of blamed) state.avoid.add(b);
        if (stalled && blamed.size === 0) {
          // Every stage answers: slow, not gone. Hedge: replay on standbys, first answer wins.
          const hedgedAt = now();
          const hedged = await hedge(state, frame, attempt, stalled);
          if ('failed' in hedged) {
            fault.cause += `; hedged on ${hedged.failed}`;
            switchTo(state, await moveTo(attempt.active, state.avoid));
            continue;
          }
          answer = hedged.answer;
          stepMs = now() - hedgedAt;
          if (hedged.swapped) fault.swapped = [...new Set([...fault.swapped, ...hedged.swapped])];
          else if (fault.reason === 'stalled' && fault.swapped.length === 0) fault = undefined; // the old route answered after all: no recovery
        } else {
          if (stalled) stalled.catch(() => undefined);
          // Nobody to blame (a stream that broke between live stages): the coordinator's route as it stands now.
          switchTo(state, blamed.size === 0 ? await refresh(attempt.active) : await moveTo(attempt.active, state.avoid));
          continue;
        }
      }
      if (fault) {
        state.track.recoveries.push({ step: frame.step, reason: fault.reason, swapped: fault.swapped, cause: fault.cause, replayedRows: state.attempt.steps === 1 ? state.rowCount + frame.dims[1] : 0, replayStageMs: answer.hops.map((h) => h.stageMs), replayMs: stepMs, ms: now() - fault.at, stageRequestId: state.attempt.stageRequestId });
      }
      state.failures = 0;
      state.rows.push(frame.data.slice());
      state.rowCount += frame.dims[1];
      return answerFor(frame, answer.frame);
    }
  }

  /**
   * A stalled step whose stages all answer: the step is replayed on the route with every hop that
   * has a standby swapped, racing the old route; with no standby, on fresh streams through the
   * same stages (a frame lost on a stream that never closed is not waited for). When both failed, what the hedge tried, for people.
   */
  async function hedge(state: RequestState, frame: HiddenFrame, old: Attempt, pending: Promise<RouteStep>): Promise<{ answer: RouteStep; swapped?: string[] } | { failed: string }> {
    const route = old.active.route;
    const swappable = route.hops.filter((h) => route.standbys.some((s) => sameLayers(s, h) && !state.avoid.has(s.peerId))).map((h) => h.peerId);
    const on = activate(await reroute(route, new Set([...state.avoid, ...swappable])), old.active, true);
    const attempt = attemptOn(on, crypto.randomUUID());
    state.track.stageRequests.push(stageRequest(attempt));
    const fresh = send(state, attempt, frame).then((r) => r.step);
    // The first answer wins. Once the hedge failed too, the old route is waited for a while yet:
    // a cold route's first step (a tab compiling its engine, a loaded machine) may be that slow,
    // so it gets as long as its link allows; a measured route whose step is a first step's time
    // later still is lost (a link that looks open and carries nothing), and the request moves on.
    const graceMs = timing.measured(old.active.roundTrips) ? timing.deadline(old.active.roundTrips, true, state.rowCount + frame.dims[1]) : Infinity;
    const tagged = <T>(p: Promise<T>, tag: 'old' | 'hedge') => p.then((v) => ({ tag, v }));
    const first = await Promise.any([tagged(givenUpAfter(pending, fresh, graceMs), 'old'), tagged(fresh, 'hedge')]).catch(() => null);
    if (!first) {
      void release(attempt);
      const err = (await fresh.catch((e: unknown) => e)) as Error;
      return { failed: `${routeName(on.route.hops)}, which failed too (${err?.name}: ${err?.message})` };
    }
    if (first.tag === 'old') {
      fresh.catch(() => undefined);
      void release(attempt);
      return { answer: first.v };
    }
    pending.catch(() => undefined);
    for (const id of swappable) state.avoid.add(id);
    if (active === old.active) active = on;
    void release(old);
    state.attempt = attempt;
    return { answer: first.v, swapped: swappable };
  }

  return {
    forward: () => Promise.reject(new InfermeshError('a recovering route takes frames as the pipeline builds them (forwardFrame)')),
    forwardFrame,
    end(requestId) {
      const state = requests.get(requestId);
      requests.delete(requestId);
      tracks.delete(requestId);
      if (!state) return Promise.resolve();
      return release(state.attempt);
    },
    current: async () => {
      const a = await current();
      return { route: a.route, link: a.link };
    },
    currentLink: () => active?.link ?? null,
    track(requestId) {
      const track = newTrack();
      tracks.set(requestId, track);
      return track;
    },
    async close() {
      await Promise.all([...links].map((l) => l.close()));
    },
  };
}
