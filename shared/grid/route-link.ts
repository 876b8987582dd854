/**
 * A client's end of a route: a pipeline stage (shared/runtime/pipeline.ts StageLink) that sends
 * each hidden-state frame to the route's first stage and waits for the last stage to send the
 * result back on the RESULT protocol. Every hop is a direct WebRTC connection (dialDirect);
 * each result carries the stage milliseconds and link kind of every hop it crossed, which the
 * link keeps for reports. One STAGE stream per request: the stages keep that request's cache.
 * With the client's key, every frame it sends is sealed (seal-queue.ts): that seal is what
 * ties the first stage's committed input to the client.
 *
 * The client's hop parses each frame once: the pipeline hands the link a frame it built
 * (forwardFrame), which is encoded once to go out and sealed as it is; the result is parsed once
 * where it arrives (serveResults, which must read its request id anyway) and handed back parsed.
 */
import type { Libp2p } from 'libp2p';
import type { PrivateKey, Stream } from '@libp2p/interface';
import { lpStream } from '@libp2p/utils';
import type { LengthPrefixedStream } from '@libp2p/utils';
import { InfermeshError } from '../errors.ts';
import { median } from '../statistics.ts';
import { decodeFrame, encodeFrame } from '../protocol/frame.ts';
import type { HiddenFrame } from '../protocol/frame.ts';
import type { StageLink } from '../runtime/pipeline.ts';
import { dialDirect, peerAddress } from './node.ts';
import { linkKind, worseLink } from './link-kind.ts';
import type { LinkKind } from './link-kind.ts';
import { openWithSpare } from './spare-streams.ts';
import { RESULT_PROTOCOL, STAGE_PROTOCOL } from './protocol-ids.ts';
import { createSealQueue } from './seal-queue.ts';
import type { SealQueue } from './seal-queue.ts';
import { WrongRequestError } from './stage-server.ts';
import type { RouteHop } from './protocol.ts';
import { decodeStageMessage, encodeEnd, encodeFrameMessage, encodeOpen, MAX_STAGE_MESSAGE_BYTES, refuse as refuseTo, StageFailedError } from './stage-wire.ts';
import type { HopRecord } from './stage-wire.ts';

/** A step that got no answer in time: a stage is gone or stuck. */
export class StageTimeoutError extends InfermeshError {
  override name = 'StageTimeoutError';
}

/** The route broke mid-request: a stream closed before the result came back, or would not open. */
export class RouteBrokenError extends InfermeshError {
  override name = 'RouteBrokenError';
  /** the stage at the other end of what broke, when the client knows it */
  readonly peerId?: string;
  constructor(message: string, options: { cause?: unknown; peerId?: string } = {}) {
    super(message, { cause: options.cause });
    this.peerId = options.peerId;
  }
}

/** Failures of a route rather than of the request: a stage gone, a link that would not open. */
export const ROUTE_ERRORS = ['StageFailedError', 'RouteBrokenError', 'StageTimeoutError', 'DirectConnectionError'];
const ROUTE_ERROR_NAMES: ReadonlySet<string> = new Set(ROUTE_ERRORS);

export interface HopReport {
  /** 'client' for the first link's sender; otherwise the stage's peer id */
  from: string;
  to: string;
  layers?: { start: number; end: number };
  /** median stage milliseconds of the receiving stage (undefined for the link back to the client) */
  stageMs?: number;
  /**
   * how the frames crossed this link, the worst seen (link-kind.ts): 'webrtc-direct' peer to
   * peer (host or srflx candidates), 'webrtc-turn' through a TURN server, 'relayed' through the
   * grid server's circuit relay (not WebRTC)
   */
  transport: 'webrtc-direct' | 'webrtc-turn' | 'relayed';
}

/** One step's answer on a route: the result frame, parsed once, and the records of the hops it crossed. */
export interface RouteStep {
  frame: HiddenFrame;
  hops: HopRecord[];
}

export interface RouteLink extends StageLink {
  readonly hops: RouteHop[];
  /**
   * One step: `frame` goes to the first stage (its request's streams opened on its first step)
   * and its result comes back, or a route error (StageTimeoutError after the link's
   * stepTimeoutMs). Recovery (route-recovery.ts) sets shorter deadlines from measured times.
   */
  step(frame: HiddenFrame): Promise<RouteStep>;
  report(): HopReport[];
  close(): Promise<void>;
}

/** A result as it arrived: parsed once, the bytes it came in, and the hops it crossed. */
interface Result {
  frame: HiddenFrame;
  bytes: Uint8Array;
  hops: HopRecord[];
}

interface Pending {
  resolve(result: Result): void;
  reject(err: Error): void;
}

interface Session {
  out: LengthPrefixedStream<Stream>;
  seals: SealQueue;
  pending?: Pending;
  /** what broke the route while no step was in flight */
  broken?: Error;
  /** how the client's link to the first stage carries frames (link-kind.ts) */
  firstLink: () => LinkKind;
}

export interface RouteLinkOptions {
  packageId: string;
  hops: RouteHop[];
  stepTimeoutMs?: number;
  maxMessageBytes?: number;
}

/** Return streams from last stages, dispatched to the route link that opened the request. */
export interface ResultSink {
  /** `frame` is `bytes` parsed (once, here); `hops` the records of the hops it crossed. */
  expect(requestId: string, deliver: (frame: HiddenFrame, bytes: Uint8Array, hops: HopRecord[]) => void, fail: (err: Error) => void): void;
  forget(requestId: string): void;
  stop(): Promise<void>;
}

/** Registers the RESULT protocol on a client node; one sink serves all of the node's routes. */
export async function serveResults(node: Libp2p, options: { maxMessageBytes?: number } = {}): Promise<ResultSink> {
  const maxBytes = options.maxMessageBytes ?? MAX_STAGE_MESSAGE_BYTES;
  const waiting = new Map<string, { deliver: (frame: HiddenFrame, bytes: Uint8Array, hops: HopRecord[]) => void; fail: (err: Error) => void }>();
  const me = node.peerId.toString();
  await node.handle(RESULT_PROTOCOL, async (stream, connection) => {
    const lp = lpStream(stream, { maxDataLength: maxBytes });
    const refuse = (err: Error, requestId?: string) => refuseTo(lp, err, me, requestId);
    let requestId: string | undefined;
    try {
      const first = decodeStageMessage((await lp.read()).subarray());
      if (first.kind !== 'open' || !waiting.has(first.open.requestId)) {
        await refuse(new WrongRequestError(first.kind === 'open' ? `this client has no request ${first.open.requestId}` : 'a result stream must start with OPEN'));
        await stream.close();
        return;
      }
      requestId = first.open.requestId;
      for (;;) {
        const message = decodeStageMessage((await lp.read()).subarray());
        const target = waiting.get(requestId);
        if (!target) break;
        if (message.kind === 'end') {
          // The client forgets a request before it ends it: an END it did not send means a stage
          // upstream went away and the rest of the route wound the request up.
          target.fail(new RouteBrokenError(`the route ended request ${requestId} before the client did (a stage before ${connection.remotePeer} went away)`));
          break;
        }
        if (message.kind === 'error') target.fail(new StageFailedError(message.failure));
        else if (message.kind === 'frame') {
          // The client's one parse of the result: handed on parsed, never parsed again.
          const result = decodeFrame(message.frame, maxBytes);
          if (result.requestId !== requestId) await refuse(new WrongRequestError(`result for request ${result.requestId} on the stream of request ${requestId}`), requestId);
          else target.deliver(result, message.frame, message.hops);
        }
      }
    } catch (err) {
      if (requestId) waiting.get(requestId)?.fail(new RouteBrokenError(`the result stream of request ${requestId} failed: ${(err as Error).message}`, { cause: err, peerId: connection.remotePeer.toString() }));
    }
    await stream.close().catch(() => undefined);
  }, { maxInboundStreams: 256 });
  return {
    expect: (id, deliver, fail) => void waiting.set(id, { deliver, fail }),
    forget: (id) => void waiting.delete(id),
    stop: () => node.unhandle(RESULT_PROTOCOL),
  };
}

export interface RouteLinkDeps {
  node: Libp2p;
  sink: ResultSink;
  /** the client node's key, to seal the frames it sends; without it they go unsealed and no stage can answer for them */
  privateKey?: PrivateKey;
}

/** Any failure to reach the route is the route's (a RouteBrokenError naming the stage, when known), for recovery to act on. */
function broken(err: unknown, what: string, requestId: string, peerId?: string): Error {
  if (ROUTE_ERROR_NAMES.has((err as Error)?.name)) return err as Error;
  return new RouteBrokenError(`${what} for request ${requestId}: ${(err as Error)?.message}`, { cause: err, peerId });
}

const TRANSPORT: Record<LinkKind, HopReport['transport']> = { direct: 'webrtc-direct', turn: 'webrtc-turn', relayed: 'relayed' };

export function createRouteLink(options: RouteLinkOptions, deps: RouteLinkDeps): RouteLink {
  const { node, sink } = deps;
  const maxBytes = options.maxMessageBytes ?? MAX_STAGE_MESSAGE_BYTES;
  const timeoutMs = options.stepTimeoutMs ?? 60_000;
  const sessions = new Map<string, Session>();
  const ending = new Set<Promise<void>>();
  const stageMs: number[][] = options.hops.map(() => []);
  const links: LinkKind[] = new Array(options.hops.length + 1).fill('direct');

  /** Fails the step in flight; between steps, the next one fails at once (a route that broke stays broken). */
  const failPending = (session: Session, err: Error) => {
    const p = session.pending;
    session.pending = undefined;
    if (p) p.reject(err);
    else session.broken ??= err;
  };

  async function open(requestId: string): Promise<Session> {
    // The client dials the last stage too: the result comes back on that connection, so the
    // last stage need not dial the client in the middle of the first step.
    const to = <T>(hop: RouteHop, p: Promise<T>) => p.catch((err: unknown) => Promise.reject(broken(err, `cannot reach ${hop.peerId}`, requestId, hop.peerId)));
    const last = options.hops[options.hops.length - 1];
    const [{ stream, connection: conn }] = await Promise.all([to(options.hops[0], openWithSpare(node, options.hops[0], STAGE_PROTOCOL)), to(last, dialDirect(node, last))]);
    const out = lpStream(stream, { maxDataLength: maxBytes });
    const session: Session = { out, seals: createSealQueue(deps.privateKey, (bytes) => out.write(bytes)), firstLink: () => linkKind(conn) };
    sessions.set(requestId, session);
    sink.expect(
      requestId,
      (frame, bytes, hops) => {
        hops.forEach((h, i) => {
          stageMs[i]?.push(h.stageMs);
          if (i + 1 < links.length) links[i + 1] = worseLink(links[i + 1], h.link);
        });
        const p = session.pending;
        session.pending = undefined;
        p?.resolve({ frame, bytes, hops });
      },
      (err) => failPending(session, err),
    );
    await out.write(encodeOpen({ requestId, packageId: options.packageId, hops: options.hops, client: peerAddress(node) }));
    // Refusals from the first stage (and, relayed by it, from later ones) arrive on this stream.
    (async () => {
      for (;;) {
        const message = decodeStageMessage((await out.read()).subarray());
        if (message.kind === 'error') failPending(session, new StageFailedError(message.failure));
      }
    })().catch((err) => failPending(session, new RouteBrokenError(`the stream to ${options.hops[0].peerId} closed: ${(err as Error).message}`, { cause: err, peerId: options.hops[0].peerId })));
    return session;
  }

  /** Sends one frame, `frame` parsed or built and `bytes` its encoding, and waits for its result. */
  async function send(frame: HiddenFrame, bytes: Uint8Array): Promise<Result> {
    const { requestId } = frame;
    let session = sessions.get(requestId);
    if (!session) {
      try {
        session = await open(requestId);
      } catch (err) {
        throw broken(err, 'cannot open the route', requestId);
      }
    }
    if (session.broken) throw session.broken;
    links[0] = worseLink(links[0], session.firstLink());
    const result = new Promise<Result>((resolve, reject) => {
      const timer = setTimeout(() => failPending(session, new StageTimeoutError(`no result for request ${requestId} within ${timeoutMs} ms`)), timeoutMs);
      session.pending = {
        resolve: (r) => (clearTimeout(timer), resolve(r)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      };
    });
    try {
      await session.out.write(encodeFrameMessage([], bytes));
    } catch (err) {
      failPending(session, broken(err, `the stream to ${options.hops[0].peerId} failed`, requestId, options.hops[0].peerId));
    }
    session.seals.add(frame);
    return result;
  }

  return {
    hops: options.hops,
    // For callers that hold bytes: parsed once here, for the request id and the seal.
    forward: async (bytes) => (await send(decodeFrame(bytes), bytes)).bytes,
    // The pipeline's way: the frame it built is encoded once and comes back parsed.
    forwardFrame: async (frame) => (await send(frame, encodeFrame(frame))).frame,
    step: async (frame) => {
      const { frame: result, hops } = await send(frame, encodeFrame(frame));
      return { frame: result, hops };
    },
    end(requestId) {
      const session = sessions.get(requestId);
      sessions.delete(requestId);
      sink.forget(requestId);
      if (!session) return Promise.resolve();
      // Sealing takes a moment after the last frame: close() waits for ends still on their way,
      // or a client that closes right after a request would cut off its seal and END.
      const ended = (async () => {
        await session.seals.flush();
        await session.out.write(encodeEnd(requestId)).catch(() => undefined);
        await session.out.unwrap().close().catch(() => undefined);
      })();
      ending.add(ended);
      return ended.finally(() => ending.delete(ended));
    },
    report() {
      return [...options.hops, null].map((hop, i) => ({
        from: i === 0 ? 'client' : options.hops[i - 1].peerId,
        to: hop ? hop.peerId : 'client',
        layers: hop?.layers,
        stageMs: hop ? median(stageMs[i]) : undefined,
        transport: TRANSPORT[links[i]],
      }));
    },
    async close() {
      await Promise.all([...[...sessions.keys()].map((id) => this.end(id)), ...ending]);
    },
  };
}
