/**
 * The validator: it takes each stage's signed commitment for a finished request, draws the
 * steps to check from randomness it makes only after the commitment arrived, checks the
 * reveal against the commitment (Merkle proofs, input hashes, positions), and queues a replay
 * of the layer range on the reference engine (replayer.ts). A step whose fingerprint does not
 * match the replay is replayed again on another thread count before a verdict is given, so no
 * one is slashed on one summation order. All of it runs after generation: nothing here is on
 * a request's path.
 *
 * A commitment carries the upstream's seal over the transcript of the stage's inputs, and every
 * revealed step its hand-off's proof under it (shared/trust/handoff.ts). With the seals, a
 * disagreement between two adjacent stages convicts one of them on its own signatures: a stage
 * that committed to inputs its upstream did not seal, or a stage that sealed one tensor for the
 * next stage and committed to another as its output (it equivocated).
 *
 * Sampling adapts per peer: new or low-reputation stages are checked often, proven ones
 * rarely (shared/trust/challenge.ts). Verdicts go to `onVerdict` (slashing, blacklisting,
 * rewards) and refusals, with their reasons, to `onRefusal`.
 *
 * Any peer can open a trust stream, so each is bounded: a commitment within COMMIT_WINDOW_MS,
 * a reveal within the answer window and no larger than an honest one for this model
 * (maxRevealBytes), at most as many steps as the context, one commitment per stage and request,
 * a few streams at once. Every refusal is sent as an ERROR naming it, then the stream ends.
 */
import type { Libp2p } from 'libp2p';
import type { Stream } from '@libp2p/interface';
import type { LengthPrefixedStream } from '@libp2p/utils';
import { InfermeshError } from '../../shared/errors.ts';
import type { Manifest } from '../../shared/model/manifest.ts';
import { decodeSignedCommitment, verifyCommitment, verifyReveal } from '../../shared/trust/commitment.ts';
import type { SignedCommitment } from '../../shared/trust/commitment.ts';
import { drawChallenges, samplingRate } from '../../shared/trust/challenge.ts';
import type { Reputation } from '../../shared/trust/challenge.ts';
import { compareFingerprint, thresholdsFor } from '../../shared/trust/fingerprint.ts';
import type { FingerprintThresholds, FingerprintVerdict } from '../../shared/trust/fingerprint.ts';
import { handoffInTranscript, HandoffSealError, transcriptSealed } from '../../shared/trust/handoff.ts';
import { decodeStepRecord, encodeStepRecord, tensorSha256 } from '../../shared/trust/step-record.ts';
import type { StepRecord } from '../../shared/trust/step-record.ts';
import { TRUST_PROTOCOL } from '../../shared/grid/protocol-ids.ts';
import { decodeTrustMessage, encodeChallenge, encodeReceipt, encodeTrustFailure, maxRevealBytes } from '../../shared/grid/trust-wire.ts';
import { boundedLpStream, FRAMING_ERRORS } from '../../shared/grid/lp-stream.ts';
import { CLOSE_GRACE_MS, endStream } from '../../shared/grid/stream-end.ts';
import type { Reveal } from '../../shared/grid/trust-wire.ts';
import type { Replayer } from './replayer.ts';

/** A commitment or reveal the validator will not accept; the name says which rule it broke. */
export class CommitmentRefusedError extends InfermeshError {
  override name = 'CommitmentRefusedError';
}
export class RevealLateError extends InfermeshError {
  override name = 'RevealLateError';
}
export class RevealInvalidError extends InfermeshError {
  override name = 'RevealInvalidError';
}
/**
 * Two stages of a request do not line up: the later one's inputs are sealed by a peer other
 * than the stage that committed to the layers before it. Both are named; neither is convicted
 * on this alone (a bytes mismatch between a stage and its sealing upstream is a conviction, an
 * 'equivocation' verdict).
 */
export class ChainBreakError extends InfermeshError {
  override name = 'ChainBreakError';
}

/** A first stage whose inputs are sealed by a peer the coordinator never routed through it. */
export class UnknownClientError extends InfermeshError {
  override name = 'UnknownClientError';
}

/** A trust message that lost its framing: a bad length prefix, or more bytes than any honest reveal. */
export class TrustFrameError extends InfermeshError {
  override name = 'TrustFrameError';
}

/** A stage opened a trust stream and sent no commitment in time. */
export class CommitmentLateError extends InfermeshError {
  override name = 'CommitmentLateError';
}

/** A second commitment from a stage for a request it already answered for. */
export class DuplicateCommitmentError extends InfermeshError {
  override name = 'DuplicateCommitmentError';
}

/** More trust streams at once than the validator takes (from one peer, or from all). */
export class ValidatorBusyError extends InfermeshError {
  override name = 'ValidatorBusyError';
}

/** A stage commits the moment its request ends: a stream silent this long is not a stage's. */
export const COMMIT_WINDOW_MS = 5_000;
/**
 * Trust streams answered at once, each holding up to a reveal in memory: per peer (a stage
 * finishing several requests at once) and in all, which bounds what reveals take of the
 * validator's memory at MAX_OPEN_ANSWERS × maxRevealBytes (8 MiB each for the default
 * 110M-parameter model's full 2,048-token context; 0.5 MiB for stories260K). An answer takes
 * milliseconds, so a stage turned away finds room on its next request.
 */
export const MAX_OPEN_ANSWERS_PER_PEER = 8;
export const MAX_OPEN_ANSWERS = 32;
/** Requests remembered per validator for the duplicate check, the oldest forgotten first. */
const MAX_REMEMBERED_COMMITMENTS = 100_000;

/** Revealed records are kept this long for the chain check with the request's other stages. */
const CHAIN_MEMORY_MS = 10 * 60_000;

/** How long a stage has to answer a challenge: a reveal is a few MiB at most, sent at once. */
export const ANSWER_WINDOW_MS = 30_000;

export type { Reputation };

/**
 * What a verdict rests on: 'replay' compares fingerprints with the validator's replay;
 * 'unsealed-input' and 'equivocation' convict on the stage's own signatures (handoff.ts).
 */
export type VerdictKind = 'replay' | 'unsealed-input' | 'equivocation';

export interface Verdict {
  kind: VerdictKind;
  peerId: string;
  requestId: string;
  packageId: string;
  layers: { start: number; end: number };
  ok: boolean;
  /** steps whose fingerprints were compared */
  checkedSteps: number[];
  /** the request's steps the commitment covered (verified work = layers × these, when ok) */
  stepCount: number;
  /** tokens of the request (rows over all its steps: tokensOf) */
  tokens: number;
  /** the worst step's comparison (replay verdicts) */
  worst?: FingerprintVerdict;
  /** the step it was at, or the step a conviction is for */
  worstStep: number;
  replayMs: number;
  /** true when a failed first replay was confirmed by a second, and for every conviction */
  confirmed: boolean;
  /** why a conviction convicts, in words (absent for replay verdicts) */
  reason?: string;
  /**
   * the evidence: the signed commitment the verdict rests on; for an equivocation, followed by
   * the next stage's commitment (which holds this stage's seal) and its revealed record of the
   * step (the hand-off, with its proof under the sealed root)
   */
  evidence: Uint8Array;
}

export interface Refusal {
  peerId: string;
  requestId?: string;
  name: string;
  message: string;
}

export interface ValidatorOptions {
  manifest: Manifest;
  answerWindowMs?: number;
  /** default COMMIT_WINDOW_MS */
  commitWindowMs?: number;
}

/**
 * Where the validator keeps the replays it owes (a reveal accepted, no verdict yet), so a
 * restarted server still judges them: the grid store (signaling-server/store.ts).
 */
export interface ReplayBacklog {
  addPendingReplay(replay: { peerId: string; commitment: Uint8Array; reveal: Uint8Array; challenged: number[] }): number;
  removePendingReplay(id: number): void;
  pendingReplays(): { id: number; peerId: string; commitment: Uint8Array; reveal: Uint8Array; challenged: number[] }[];
}

export interface ValidatorDeps {
  node: Libp2p;
  replayer: Replayer;
  /**
   * Whether the coordinator gave `client` a route whose first stage is `firstStage`: a first
   * stage's inputs must be sealed by such a client. Without it any sealing client is accepted.
   */
  routedClient?: (client: string, firstStage: string) => boolean;
  backlog?: ReplayBacklog;
  reputation?: (peerId: string) => Reputation;
  onVerdict?: (verdict: Verdict) => void;
  onRefusal?: (refusal: Refusal) => void;
  /** a stage committed, was challenged and let the answer window pass without a reveal, its stream still open (trust/no-shows.ts) */
  onMissedReveal?: (peerId: string, requestId: string) => void;
  /** Where failures that are ours, not a stage's (a bug, a store that failed), are reported; default console.error. */
  logError?: (err: unknown) => void;
  random?: (bytes: number) => Uint8Array;
  now?: () => number;
}

export interface Validator {
  /** Resolves when every queued replay has finished. */
  idle(): Promise<void>;
  stats(): { commitments: number; replays: number; replayMs: number; verdicts: number; failures: number; refusals: number };
  /** Whether `peerId` committed to `requestId` (among the last MAX_REMEMBERED_COMMITMENTS commitments). */
  committedTo(peerId: string, requestId: string): boolean;
  stop(): Promise<void>;
}

interface Job {
  /** its row in the backlog, removed once the verdict is out */
  backlogId?: number;
  peerId: string;
  signed: SignedCommitment;
  commitmentBytes: Uint8Array;
  records: StepRecord[];
  inputs: Float32Array[];
  challenged: number[];
}

export async function startValidator(options: ValidatorOptions, deps: ValidatorDeps): Promise<Validator> {
  const { manifest } = options;
  const answerWindowMs = options.answerWindowMs ?? ANSWER_WINDOW_MS;
  const commitWindowMs = options.commitWindowMs ?? COMMIT_WINDOW_MS;
  const logError = deps.logError ?? ((err: unknown) => console.error(err));
  const now = deps.now ?? Date.now;
  const random = deps.random ?? ((n: number) => crypto.getRandomValues(new Uint8Array(n)));
  const reputations = new Map<string, Reputation>();
  const reputationOf = deps.reputation ?? ((peerId: string) => reputations.get(peerId) ?? { verifiedSteps: 0, failedChecks: 0 });
  const stats = { commitments: 0, replays: 0, replayMs: 0, verdicts: 0, failures: 0, refusals: 0 };
  let queue: Promise<void> = Promise.resolve();
  const thresholds = thresholdsFor(manifest.dtype);
  const maxMessageBytes = maxRevealBytes(manifest.config);
  /** Per request, each stage's revealed (and seal-checked) records by first layer, for the chain check. */
  const chains = new Map<string, { at: number; stages: Map<number, ChainLink> }>();

  /**
   * The input chain: where this stage and the one before or after it both revealed a step, the
   * later stage's input SHA-256 must be the earlier one's output SHA-256 (the bytes crossed
   * the link unchanged).
   */
  function checkChain(signed: SignedCommitment, commitmentBytes: Uint8Array, records: StepRecord[]): void {
    const { requestId, layers } = signed.commitment;
    const cutoff = now() - CHAIN_MEMORY_MS;
    for (const [id, chain] of chains) if (chain.at < cutoff) chains.delete(id);
    let chain = chains.get(requestId);
    if (!chain) chains.set(requestId, (chain = { at: now(), stages: new Map() }));
    const self: ChainLink = { signed, commitmentBytes, records };
    chain.stages.set(layers.start, self);
    const before = [...chain.stages.values()].find((s) => s.signed.commitment.layers.end === layers.start);
    const after = chain.stages.get(layers.end);
    if (before) checkLink(before, self);
    if (after) checkLink(self, after);
  }

  /**
   * `to`'s revealed records were checked to be the hand-offs its upstream sealed. If that
   * upstream is `from`, the first step whose bytes differ convicts `from`: it sealed one tensor
   * and committed to another. If `to` names another upstream, the two do not form a link:
   * refused, naming both.
   */
  function checkLink(from: ChainLink, to: ChainLink): void {
    const { requestId, layers } = to.signed.commitment;
    const sender = from.signed.commitment.peerId;
    if (to.signed.commitment.upstream !== sender) {
      const err = new ChainBreakError(
        `request ${requestId}: the layer ${layers.start} stage (${to.signed.commitment.peerId}) took its inputs from ${to.signed.commitment.upstream}, not from ${sender}, which committed to the layers before it`,
      );
      for (const who of [sender, to.signed.commitment.peerId]) noteRefusal(who, err, requestId);
      return;
    }
    const steps = Math.min(from.records.length, to.records.length);
    for (let step = 0; step < steps; step++) {
      if (equalBytes(from.records[step].outputSha256, to.records[step].inputSha256)) continue;
      convict(from.signed, concatBytes(from.commitmentBytes, to.commitmentBytes, encodeStepRecord(to.records[step])), 'equivocation', step,
        `step ${step} of request ${requestId}: it sealed a tensor for the layer ${layers.start} stage (${to.signed.commitment.peerId}) other than the output it committed to`);
      return;
    }
  }

  /** A failed verdict on the stage's own signatures: no replay needed, nothing to confirm. */
  function convict(signed: SignedCommitment, evidence: Uint8Array, kind: Exclude<VerdictKind, 'replay'>, step: number, reason: string): void {
    const { commitment } = signed;
    stats.verdicts++;
    stats.failures++;
    if (!deps.reputation) {
      const rep = reputationOf(commitment.peerId);
      reputations.set(commitment.peerId, { ...rep, failedChecks: rep.failedChecks + 1 });
    }
    deps.onVerdict?.({
      kind,
      peerId: commitment.peerId,
      requestId: commitment.requestId,
      packageId: commitment.packageId,
      layers: commitment.layers,
      ok: false,
      checkedSteps: [step],
      stepCount: commitment.stepCount,
      tokens: 0,
      worstStep: step,
      replayMs: 0,
      confirmed: true,
      reason,
      evidence,
    });
  }

  const transcriptOf = (commitment: SignedCommitment['commitment']) => ({ requestId: commitment.requestId, steps: commitment.stepCount, root: commitment.upstreamRoot });

  /** The first revealed step whose input is not the hand-off its upstream sealed, or -1. */
  async function firstUnsealed(commitment: SignedCommitment['commitment'], records: StepRecord[]): Promise<number> {
    const transcript = transcriptOf(commitment);
    for (const [i, r] of records.entries()) {
      const handoff = { requestId: commitment.requestId, step: r.step, position: r.position, rows: r.rows, tensorSha256: r.inputSha256 };
      if (!(await handoffInTranscript(handoff, r.handoffProof, transcript))) return i;
    }
    return -1;
  }

  const noteRefusal = (peerId: string, err: unknown, requestId?: string) => {
    stats.refusals++;
    deps.onRefusal?.({ peerId, requestId, name: (err as Error)?.name ?? 'Error', message: (err as Error)?.message ?? String(err) });
  };

  /** Notes the refusal and sends it; the stream is ended by the handler's caller. */
  const refuse = async (wire: LengthPrefixedStream<Stream>, peerId: string, err: unknown, requestId?: string) => {
    noteRefusal(peerId, err, requestId);
    await wire.write(encodeTrustFailure(err), { signal: AbortSignal.timeout(CLOSE_GRACE_MS) }).catch(() => undefined);
  };

  async function checkReveal(signed: SignedCommitment, reveal: Reveal, last: number): Promise<StepRecord[]> {
    const { commitment } = signed;
    if (reveal.records.length !== last + 1 || reveal.records.some((r, i) => r.index !== i)) {
      throw new RevealInvalidError(`the reveal must hold the records of steps 0..${last} in order, got ${reveal.records.map((r) => r.index).join(',') || 'none'}`);
    }
    if (reveal.inputs.length !== last + 1) throw new RevealInvalidError(`the reveal must hold the inputs of steps 0..${last}, got ${reveal.inputs.length}`);
    const records = reveal.records.map((r) => decodeStepRecord(r.record));
    try {
      await verifyReveal(signed, reveal.records.map((r, i) => ({ index: r.index, record: records[i], proof: r.proof })));
    } catch (err) {
      throw new RevealInvalidError(`the reveal does not match the commitment: ${(err as Error).message}`, { cause: err });
    }
    let position = 0;
    for (let i = 0; i <= last; i++) {
      const record = records[i];
      const input = reveal.inputs[i];
      if (record.position !== position) throw new RevealInvalidError(`step ${i} starts at position ${record.position}; the steps before it end at ${position}`);
      if (input.length !== record.rows * manifest.config.dim) throw new RevealInvalidError(`step ${i}'s input holds ${input.length} values, not ${record.rows} rows of ${manifest.config.dim}`);
      const digest = await tensorSha256(input);
      if (!equalBytes(digest, record.inputSha256)) throw new RevealInvalidError(`step ${i}'s revealed input is not the input committed to (SHA-256 differs)`);
      position += record.rows;
    }
    if (commitment.stepCount <= last) throw new RevealInvalidError(`the commitment covers ${commitment.stepCount} steps, not step ${last}`);
    return records;
  }

  async function judge(job: Job): Promise<void> {
    const { commitment } = job.signed;
    const compare = (outputs: Float32Array[]) =>
      job.challenged.map((step) => ({ step, verdict: compareFingerprint(job.records[step].output, outputs[step], thresholds) }));
    const worstOf = (results: ReturnType<typeof compare>) => results.reduce((a, b) => (marginOf(b.verdict, thresholds) < marginOf(a.verdict, thresholds) ? b : a));
    const t0 = performance.now();
    let results = compare(await deps.replayer.replay(commitment.layers, { steps: job.inputs }, 1));
    let confirmed = false;
    if (results.some((r) => !r.verdict.ok)) {
      // A second replay on other threads: the stage is judged failing only if both say so.
      results = compare(await deps.replayer.replay(commitment.layers, { steps: job.inputs }, 2));
      confirmed = results.some((r) => !r.verdict.ok);
    }
    const replayMs = performance.now() - t0;
    stats.replays++;
    stats.replayMs += replayMs;
    const ok = results.every((r) => r.verdict.ok);
    const worst = worstOf(results);
    const rep = reputationOf(job.peerId);
    if (!deps.reputation) reputations.set(job.peerId, ok ? { ...rep, verifiedSteps: rep.verifiedSteps + commitment.stepCount } : { ...rep, failedChecks: rep.failedChecks + 1 });
    stats.verdicts++;
    if (!ok) stats.failures++;
    deps.onVerdict?.({
      kind: 'replay',
      peerId: job.peerId,
      requestId: commitment.requestId,
      packageId: commitment.packageId,
      layers: commitment.layers,
      ok,
      checkedSteps: job.challenged,
      stepCount: commitment.stepCount,
      tokens: tokensOf(commitment.stepCount, job.records),
      worst: worst.verdict,
      worstStep: worst.step,
      replayMs,
      confirmed,
      evidence: job.commitmentBytes,
    });
  }

  /** The trust stream's next message, in time; a broken frame or a deadline passed is a named refusal. */
  async function readMessage(wire: LengthPrefixedStream<Stream>, by: number, late: () => Error): Promise<Uint8Array> {
    try {
      return (await wire.read({ signal: AbortSignal.timeout(Math.max(0, by - now())) })).subarray();
    } catch (err) {
      const name = (err as Error)?.name;
      if (name === 'TimeoutError' || name === 'AbortError') throw late();
      if (FRAMING_ERRORS.has(name)) throw new TrustFrameError(`a trust message is a varint length, then at most ${maxMessageBytes} bytes for this model: ${(err as Error).message}`);
      throw err;
    }
  }

  /** (peer, request) pairs already committed to, oldest first, for the duplicate check. */
  const committed = new Set<string>();
  function firstCommitment(peerId: string, requestId: string): void {
    const key = `${peerId} ${requestId}`;
    if (committed.has(key)) throw new DuplicateCommitmentError(`request ${requestId} was already committed to by this stage`);
    committed.add(key);
    if (committed.size > MAX_REMEMBERED_COMMITMENTS) committed.delete(committed.values().next().value!);
  }

  async function handle(stream: Stream, peerId: string): Promise<void> {
    const wire = boundedLpStream(stream, maxMessageBytes);
    let signed: SignedCommitment;
    let commitmentBytes: Uint8Array;
    try {
      const opened = now();
      const first = decodeTrustMessage(await readMessage(wire, opened + commitWindowMs, () => new CommitmentLateError(`no commitment within ${commitWindowMs} ms of opening the stream`)));
      if (first.kind !== 'commit') throw new CommitmentRefusedError(`a trust stream starts with COMMIT, not ${first.kind.toUpperCase()}`);
      commitmentBytes = first.commitment;
      signed = decodeSignedCommitment(commitmentBytes);
      await verifyCommitment(signed);
      const { commitment } = signed;
      if (commitment.peerId !== peerId) throw new CommitmentRefusedError(`a commitment for peer ${commitment.peerId} came from peer ${peerId}`);
      if (commitment.packageId !== manifest.id) throw new CommitmentRefusedError(`the grid serves package ${manifest.id}, not ${commitment.packageId}`);
      const { start, end } = commitment.layers;
      if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && end <= manifest.config.nLayers && start < end)) {
        throw new CommitmentRefusedError(`layers ${start}..${end - 1} are not a range of this ${manifest.config.nLayers}-layer model`);
      }
      // Every step takes at least one position of the context: more steps than that were never run.
      if (commitment.stepCount > manifest.config.maxSeqLen) {
        throw new CommitmentRefusedError(`a commitment to ${commitment.stepCount} steps: a request of this model has at most ${manifest.config.maxSeqLen}`);
      }
      if (start === 0 && deps.routedClient && !deps.routedClient(commitment.upstream, peerId)) {
        throw new UnknownClientError(`its inputs are sealed by ${commitment.upstream}, which the coordinator never gave a route through this stage`);
      }
      firstCommitment(peerId, commitment.requestId);
      stats.commitments++;
      if (!(await transcriptSealed(transcriptOf(commitment), commitment.upstreamSeal, commitment.upstream))) {
        // Its own signature convicts it: an honest stage commits only to inputs its upstream sealed.
        convict(signed, commitmentBytes, 'unsealed-input', 0, `request ${commitment.requestId}: it committed to inputs its upstream ${commitment.upstream} did not seal`);
        throw new HandoffSealError(`the seal in the commitment is not ${commitment.upstream}'s seal over the inputs committed to`);
      }
    } catch (err) {
      await refuse(wire, peerId, err);
      return;
    }
    const { commitment } = signed;
    // The seed exists only now, after the commitment is fixed: a stage cannot know what will be checked.
    const challenged = commitment.stepCount > 0 ? await drawChallenges(random(32), commitment.stepCount, samplingRate(reputationOf(peerId))) : [];
    const deadline = now() + answerWindowMs;
    try {
      await wire.write(encodeChallenge({ steps: challenged, deadline }));
      const raw = await readMessage(wire, deadline, () => new RevealLateError(`no reveal within the answer window of ${answerWindowMs} ms`));
      const message = decodeTrustMessage(raw);
      if (message.kind !== 'reveal') throw new RevealInvalidError(`expected REVEAL, got ${message.kind.toUpperCase()}`);
      if (now() > deadline) throw new RevealLateError(`the reveal came ${now() - deadline} ms after the answer window of ${answerWindowMs} ms closed`);
      const last = challenged.length > 0 ? Math.max(...challenged) : -1;
      const records = await checkReveal(signed, message.reveal, last);
      const unsealed = await firstUnsealed(commitment, records);
      if (unsealed >= 0) {
        // Its own signature convicts it: an honest stage commits only to inputs whose seals it checked.
        convict(signed, commitmentBytes, 'unsealed-input', unsealed,
          `step ${unsealed} of request ${commitment.requestId}: it committed to an input other than the one its upstream ${commitment.upstream} sealed`);
        throw new HandoffSealError(`step ${unsealed}'s input is not the hand-off ${commitment.upstream} sealed`);
      }
      await wire.write(encodeReceipt(commitment.requestId, true));
      checkChain(signed, commitmentBytes, records);
      if (challenged.length === 0) return;
      const backlogId = deps.backlog?.addPendingReplay({ peerId, commitment: commitmentBytes, reveal: raw.slice(), challenged });
      enqueue({ backlogId, peerId, signed, commitmentBytes, records, inputs: message.reveal.inputs, challenged });
    } catch (err) {
      if ((err as Error)?.name === 'RevealLateError') deps.onMissedReveal?.(peerId, commitment.requestId);
      await refuse(wire, peerId, err, commitment.requestId);
    }
  }

  /** Set by stop(): a replay cut short by the shutdown stays in the backlog for the next run. */
  let stopped = false;
  const forget = (id: number | undefined) => {
    if (id === undefined) return;
    try {
      deps.backlog?.removePendingReplay(id);
    } catch {
      // The store is gone (shutting down): the next run judges this one again, which is harmless.
    }
  };

  /** Judged one after another; a job leaves the backlog once judged, or once its replay failed (a refusal says why). */
  function enqueue(job: Job): void {
    queue = queue.then(() => judge(job)).then(
      () => forget(job.backlogId),
      (err) => {
        if (stopped) return;
        deps.onRefusal?.({ peerId: job.peerId, requestId: job.signed.commitment.requestId, name: (err as Error)?.name ?? 'Error', message: `the replay failed: ${(err as Error)?.message}` });
        forget(job.backlogId);
      },
    );
  }

  // Replays an earlier run accepted and did not judge: their reveals were checked when they came.
  for (const owed of deps.backlog?.pendingReplays() ?? []) {
    try {
      const message = decodeTrustMessage(owed.reveal);
      if (message.kind !== 'reveal') throw new RevealInvalidError(`a stored reveal is a ${message.kind.toUpperCase()} message`);
      const signed = decodeSignedCommitment(owed.commitment);
      const records = message.reveal.records.map((r) => decodeStepRecord(r.record));
      enqueue({ backlogId: owed.id, peerId: owed.peerId, signed, commitmentBytes: owed.commitment, records, inputs: message.reveal.inputs, challenged: owed.challenged });
    } catch (err) {
      noteRefusal(owed.peerId, err);
      forget(owed.id);
    }
  }

  /** Trust streams being answered, per peer. */
  const open = new Map<string, number>();
  let openInAll = 0;
  await deps.node.handle(TRUST_PROTOCOL, (stream, connection) => {
    const peerId = connection.remotePeer.toString();
    const mine = open.get(peerId) ?? 0;
    if (mine >= MAX_OPEN_ANSWERS_PER_PEER || openInAll >= MAX_OPEN_ANSWERS) {
      const err = new ValidatorBusyError(mine >= MAX_OPEN_ANSWERS_PER_PEER ? `at most ${MAX_OPEN_ANSWERS_PER_PEER} trust streams at once per peer` : 'the validator is answering as many trust streams as it takes; retry shortly');
      noteRefusal(peerId, err);
      void endStream(stream, () => boundedLpStream(stream, maxMessageBytes).write(encodeTrustFailure(err)));
      return;
    }
    open.set(peerId, mine + 1);
    openInAll++;
    handle(stream, peerId)
      .catch(logError)
      .finally(() => {
        openInAll--;
        const left = (open.get(peerId) ?? 1) - 1;
        if (left > 0) open.set(peerId, left);
        else open.delete(peerId);
        return endStream(stream);
      });
  }, { maxInboundStreams: MAX_OPEN_ANSWERS_PER_PEER * 2 });

  return {
    idle: async () => {
      let seen: Promise<void>;
      do {
        seen = queue;
        await seen;
      } while (seen !== queue);
    },
    stats: () => ({ ...stats }),
    committedTo: (peerId, requestId) => committed.has(`${peerId} ${requestId}`),
    stop: () => {
      stopped = true;
      return deps.node.unhandle(TRUST_PROTOCOL);
    },
  };
}

/** A failed verdict in words, for the stage's page, clients and the ledger. */
export function verdictReason(verdict: Verdict): string {
  const { worst, worstStep } = verdict;
  if (verdict.kind !== 'replay' || !worst) return verdict.reason ?? `${verdict.kind} at step ${worstStep} of request ${verdict.requestId}`;
  const replays = verdict.confirmed ? 'two replays' : 'the replay';
  return `step ${worstStep} of request ${verdict.requestId} (layers ${verdict.layers.start}..${verdict.layers.end - 1}) does not match ${replays}: ` +
    `${(worst.worstMatch.matchFraction * 100).toFixed(0)}% of its top-k positions match, value error ${worst.worstValue.valueError.toPrecision(3)}`;
}

/**
 * The tokens a stage request carried, for its pay: the revealed steps' rows (steps 0..the last
 * challenged, which hold the only step of many rows, the prompt or a replay) and one row for
 * each later step, a decode step's one token.
 */
export function tokensOf(stepCount: number, revealed: readonly StepRecord[]): number {
  return revealed.reduce((sum, r) => sum + r.rows, 0) + Math.max(0, stepCount - revealed.length);
}

/** The smaller of a comparison's two margins, each as a fraction of its threshold so the two compare. */
function marginOf(verdict: FingerprintVerdict, thresholds: FingerprintThresholds): number {
  return Math.min(verdict.margins.matchFraction / thresholds.minMatchFraction, verdict.margins.valueError / thresholds.maxValueError);
}

interface ChainLink {
  signed: SignedCommitment;
  commitmentBytes: Uint8Array;
  records: StepRecord[];
}

function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && a.every((v, i) => v === b[i]);
}
