/**
 * A donor's side of pipelined generation: it accepts STAGE streams from upstream (the client or
 * the previous stage), runs each frame through its shard engine, and forwards the result over a
 * direct WebRTC connection to the next stage, or to the client on the RESULT protocol. Bad input
 * is refused with an ERROR message to whoever sent it, and only that request is affected: the
 * stage keeps serving every other stream.
 *
 * With a key, the stage seals the frames it hands to the next stage (seal-queue.ts: one
 * signature per request, before its END) and keeps its upstream's seal in the journal: a
 * request's frames must come from the peer the route puts before this stage (the client for the
 * first stage).
 *
 * A frame is parsed once on this side of the hop, here, when it arrives (decodeFrame in
 * `handle`): the request check, the stats and the journal all read that one parse. The engine
 * gets the bytes: it runs behind a worker boundary (a Web Worker, or a Node worker thread), so
 * it parses its own copy (worker/engine.ts). Its output comes back as bytes too, and is parsed
 * once, only when the journal or the seal needs it.
 */
import type { Libp2p } from 'libp2p';
import type { Connection, PrivateKey, Stream } from '@libp2p/interface';
import { lpStream } from '@libp2p/utils';
import type { LengthPrefixedStream } from '@libp2p/utils';
import { InfermeshError } from '../errors.ts';
import { decodeFrame, frameRows } from '../protocol/frame.ts';
import type { HiddenFrame } from '../protocol/frame.ts';
import type { LayerRange } from '../runtime/stage.ts';
import type { StepJournal } from '../trust/step-journal.ts';
import { linkKind } from './link-kind.ts';
import type { LinkKind } from './link-kind.ts';
import { openWithSpare } from './spare-streams.ts';
import { createSealQueue } from './seal-queue.ts';
import { nextMessage } from './lp-stream.ts';
import { RESULT_PROTOCOL, STAGE_PROTOCOL } from './protocol-ids.ts';
import { decodeStageMessage, encodeEnd, encodeFailure, encodeFrameMessage, encodeOpen, MAX_STAGE_MESSAGE_BYTES, refuse as refuseTo, StageMessageError } from './stage-wire.ts';
import type { StageOpen } from './stage-wire.ts';
import type { PeerAddress } from './protocol.ts';

/**
 * A stream carrying another request than the one it was opened for: a frame for another request
 * id on a stage stream, a result for another request on a result stream, or a result stream for
 * a request the client never asked for. Not the engine's UnknownRequestError (shared/runtime/stage.ts),
 * a step for a request whose cache the engine does not hold.
 */
export class WrongRequestError extends InfermeshError {
  override name = 'WrongRequestError';
}

/** An OPEN for layers, a model or a route position this stage does not serve. */
export class WrongStageError extends InfermeshError {
  override name = 'WrongStageError';
}

/**
 * A stage lost its link to the next one mid-request (the stream to it closed or reset before the
 * request's END): sent upstream to the client at once, naming the lost peer, so the client swaps
 * that stage without waiting for a step deadline.
 */
export class StageLostError extends InfermeshError {
  override name = 'StageLostError';
}

/**
 * The stage stopped serving its layers (its tab was moved to others, or is leaving) while a
 * request was open on it: sent upstream at once, naming this stage, so the client swaps it
 * instead of waiting for a step deadline on a request nobody will answer.
 */
export class StageStoppedError extends InfermeshError {
  override name = 'StageStoppedError';
}

export interface StageEngine {
  step(frame: Uint8Array): Promise<Uint8Array>;
  end(requestId: string): Promise<void>;
}

export interface StageServerOptions {
  packageId: string;
  layers: LayerRange;
  maxMessageBytes?: number;
}

export interface StageServerStats {
  requestsServed: number;
  tokensServed: number;
  activeRequests: number;
  /** the last few decode steps' stage milliseconds (one row each; prefills left out), newest last */
  recentDecodeMs: number[];
}

export interface StageServer {
  stats(): StageServerStats;
  /** Called after every step with the rows it processed (for throughput displays). */
  onStep(listener: (rows: number, ms: number) => void): void;
  /** Takes no more requests, and ends those open with StageStoppedError (their clients swap this stage at once). */
  stop(): Promise<void>;
}

/** How long a stopping stage waits for an open request's stream to close after saying so, before it cuts it. */
const STOP_CLOSE_MS = 1_000;

/** Decode steps kept for the served ms-per-layer figure. */
const RECENT_STEPS = 32;

/** Streams that end or fail while this stage waits on them are not errors of the stage. */
const closed = (err: unknown) => ['StreamClosedError', 'StreamResetError', 'StreamStateError', 'UnexpectedEOFError', 'AbortError'].includes((err as Error)?.name);

export interface StageServerDeps {
  engine: StageEngine;
  /** where served steps are noted so the stage can answer for them (shared/trust/step-journal.ts) */
  journal?: StepJournal;
  /** the stage's libp2p key: it seals the frames it hands on (shared/trust/handoff.ts) */
  privateKey?: PrivateKey;
  /** called once a request's stream has ended, e.g. to commit to it (stage-attestor.ts) */
  onRequestEnd?: (requestId: string) => void;
  now?: () => number;
}

export async function serveStage(node: Libp2p, options: StageServerOptions, deps: StageServerDeps): Promise<StageServer> {
  const me = node.peerId.toString();
  const maxBytes = options.maxMessageBytes ?? MAX_STAGE_MESSAGE_BYTES;
  const now = deps.now ?? (() => performance.now());
  const listeners: ((rows: number, ms: number) => void)[] = [];
  const stats: StageServerStats = { requestsServed: 0, tokensServed: 0, activeRequests: 0, recentDecodeMs: [] };
  /** how to end each open request at once when the stage stops (StageStoppedError upstream) */
  const running = new Set<() => Promise<void>>();
  /** streams not yet opened by a request (spares an upstream peer keeps, spare-streams.ts): closed when the stage stops */
  const idle = new Set<Stream>();
  let stopping = false;
  const stoppedError = () => new StageStoppedError(`stage ${me} stopped serving layers ${options.layers.start}..${options.layers.end - 1}`);

  const refuse = (to: LengthPrefixedStream<Stream>, err: unknown, requestId?: string) => refuseTo(to, err, me, requestId);

  function checkOpen(open: StageOpen): number {
    if (open.packageId !== options.packageId) throw new WrongStageError(`this stage serves package ${options.packageId}, not ${open.packageId}`);
    const index = open.hops.findIndex((h) => h.peerId === me);
    if (index < 0) throw new WrongStageError(`peer ${me} is not on this route`);
    const { start, end } = open.hops[index].layers;
    if (start !== options.layers.start || end !== options.layers.end) {
      throw new WrongStageError(`this stage serves layers ${options.layers.start}..${options.layers.end - 1}, not ${start}..${end - 1}`);
    }
    return index;
  }

  async function handle(stream: Stream, connection: Connection): Promise<void> {
    const sender = connection.remotePeer.toString();
    const upstream = lpStream(stream, { maxDataLength: maxBytes });
    let open: StageOpen;
    let downstream: LengthPrefixedStream<Stream>;
    let link: () => LinkKind;
    let next: string;
    /** where this stage hands its frames on: the next stage, or the client for the last */
    let to: { peer: PeerAddress; protocol: string };
    idle.add(stream);
    try {
      const message = await upstream.read().finally(() => idle.delete(stream));
      if (stopping) throw stoppedError();
      const first = decodeStageMessage(message.subarray());
      if (first.kind !== 'open') throw new StageMessageError(`a stage stream must start with OPEN, got ${first.kind.toUpperCase()}`);
      open = first.open;
      const index = checkOpen(open);
      const expected = index === 0 ? open.client.peerId : open.hops[index - 1].peerId;
      if (sender !== expected) throw new WrongStageError(`on this route the frames for layers ${options.layers.start}..${options.layers.end - 1} come from ${expected}, not ${sender}`);
      const last = index === open.hops.length - 1;
      to = last ? { peer: open.client, protocol: RESULT_PROTOCOL } : { peer: open.hops[index + 1], protocol: STAGE_PROTOCOL };
      next = to.peer.peerId;
    } catch (err) {
      if (!closed(err)) await refuse(upstream, err);
      await stream.close().catch(() => stream.abort(err as Error));
      return;
    }
    /** Tells whoever sent the frames that the next stage is gone, naming it (StageLostError). */
    const reportLost = (message: string) => {
      const lost = new StageLostError(message);
      return upstream.write(encodeFailure({ requestId: open.requestId, name: lost.name, message: lost.message, peerId: me, lost: next })).catch(() => undefined);
    };
    try {
      const { stream: out, connection: conn } = await openWithSpare(node, to.peer, to.protocol);
      downstream = lpStream(out, { maxDataLength: maxBytes });
      link = () => linkKind(conn);
      await downstream.write(encodeOpen(open));
    } catch (err) {
      // The next stage cannot be reached: named as lost, so the client swaps it, not this stage.
      if (next !== open.client.peerId) await reportLost(`could not reach the next stage ${next}: ${(err as Error)?.message ?? String(err)}`);
      await stream.close().catch(() => stream.abort(err as Error));
      return;
    }

    // The error is let through before the stream goes (an abort would drop it unsent); frames
    // still arriving meanwhile are not computed (see `stopping` below).
    const ending = () =>
      refuse(upstream, stoppedError(), open.requestId)
        .then(() => stream.close({ signal: AbortSignal.timeout(STOP_CLOSE_MS) }))
        .catch((err: unknown) => stream.abort(err as Error));
    running.add(ending);

    // The client needs no seals from the last stage: it commits to nothing.
    const seals = createSealQueue(open.hops.at(-1)!.peerId === me ? undefined : deps.privateKey, (bytes) => downstream.write(bytes));
    stats.activeRequests += 1;
    // A request whose steps could not all be noted is not committed to: a commitment with a gap would not replay.
    let journaled = deps.journal !== undefined;
    let noted = 0;
    /** What the stage keeps to answer for a step: the engine's output parsed once, for the seal and the journal, and only when either wants it. */
    const keepForTrust = (input: HiddenFrame, rows: number, out: Uint8Array) => {
      if (!journaled && !seals.sealing) return;
      let output: HiddenFrame | undefined;
      try {
        output = decodeFrame(out);
      } catch {
        output = undefined; // not a frame: no seal, and the request is not committed to
      }
      seals.add(output);
      if (!journaled) return;
      try {
        if (!output) throw new Error('the engine answered with bytes that are not a frame');
        deps.journal!.record(open.requestId, { step: input.step, position: input.position, rows }, input.data, output.data);
        noted++;
      } catch {
        deps.journal!.forget(open.requestId);
        journaled = false;
      }
    };
    let ended = false;
    // Refusals from further down travel back up to whoever sent the frame; so does the loss of
    // the next stage (its stream ending before this stage ended the request), named by its peer id.
    const relayErrors = (async () => {
      for (;;) {
        const message = decodeStageMessage((await downstream.read()).subarray());
        if (message.kind === 'error') await upstream.write(encodeFailure(message.failure));
      }
    })().catch(async (err: unknown) => {
      if (ended || next === open.client.peerId) return;
      await reportLost(`lost the link to the next stage ${next}: ${(err as Error)?.message ?? 'the stream ended'}`);
    });

    try {
      for (;;) {
        const next = await nextMessage(upstream);
        if (next.kind === 'end') break;
        if (next.kind === 'unframed') {
          // An oversized length prefix leaves the stream unreadable: say why, then drop it.
          await refuse(upstream, new StageMessageError(`message refused: ${next.error.message} (limit ${maxBytes} bytes)`), open.requestId);
          break;
        }
        let message;
        try {
          message = decodeStageMessage(next.bytes);
        } catch (err) {
          await refuse(upstream, err, open.requestId);
          continue;
        }
        if (message.kind === 'end') break;
        if (message.kind === 'seal') {
          try {
            deps.journal?.seal(open.requestId, sender, message.steps, message.seal);
          } catch (err) {
            await refuse(upstream, err, open.requestId);
          }
          continue;
        }
        if (message.kind !== 'frame') {
          await refuse(upstream, new StageMessageError(`unexpected ${message.kind.toUpperCase()} inside a request`), open.requestId);
          continue;
        }
        try {
          // This hop's one parse of the frame (see the top of this file).
          const input = decodeFrame(message.frame, maxBytes);
          if (input.requestId !== open.requestId) {
            throw new WrongRequestError(`frame for request ${input.requestId} on the stream of request ${open.requestId}`);
          }
          // A stopped stage computes nothing more: its engine is about to load other layers.
          if (stopping) break;
          const t0 = now();
          // A copy: the engine may take the buffer (transfer to a worker) and the message shares the stream's.
          const out = await deps.engine.step(message.frame.slice());
          const ms = now() - t0;
          await downstream.write(encodeFrameMessage([...message.hops, { stageMs: ms, link: link() }], out));
          const rows = frameRows(input);
          keepForTrust(input, rows, out);
          stats.tokensServed += 1;
          if (rows === 1) {
            stats.recentDecodeMs.push(ms);
            if (stats.recentDecodeMs.length > RECENT_STEPS) stats.recentDecodeMs.shift();
          }
          for (const l of listeners) l(rows, ms);
        } catch (err) {
          await refuse(upstream, err, open.requestId);
        }
      }
    } finally {
      ended = true;
      running.delete(ending);
      stats.activeRequests -= 1;
      stats.requestsServed += 1;
      await deps.engine.end(open.requestId).catch(() => undefined);
      await seals.flush();
      await downstream.write(encodeEnd(open.requestId)).catch(() => undefined);
      await downstream.unwrap().close().catch(() => undefined);
      await stream.close().catch(() => undefined);
      void relayErrors;
      if (journaled && noted > 0) deps.onRequestEnd?.(open.requestId);
    }
  }

  await node.handle(STAGE_PROTOCOL, (stream, connection) => {
    handle(stream, connection).catch(() => stream.abort(new Error('stage stream failed')));
  }, { maxInboundStreams: 256 });

  return {
    stats: () => ({ ...stats, recentDecodeMs: [...stats.recentDecodeMs] }),
    onStep: (l) => void listeners.push(l),
    async stop() {
      stopping = true;
      await node.unhandle(STAGE_PROTOCOL);
      for (const spare of idle) spare.abort(stoppedError());
      await Promise.all([...running].map((end) => end().catch(() => undefined)));
    },
  };
}
