/**
 * What a serving stage remembers of the steps it ran, so it can answer for them: per request,
 * every step's input rows (kept for the retention window, so a challenge can be answered with
 * the inputs the validator replays) and every step's record (input and output SHA-256 and the
 * output fingerprint, shared/trust/step-record.ts) for the commitment signed when the request
 * ends. The stage server (shared/grid/stage-server.ts) writes it after it has forwarded a
 * step's output; hashing and fingerprinting run in a later task, never before the next frame
 * goes out.
 *
 * The upstream's seal (handoff.ts) arrives before its END; `close` checks it against the inputs
 * the stage recorded and gives each record its hand-off's proof, so the stage never commits to
 * an input it could not prove was handed to it (a commitment that did would convict the stage
 * itself).
 *
 * Memory is bounded: beyond `maxBytes` of retained inputs the oldest closed requests go first,
 * and a request older than the retention window is forgotten; asking for either is refused by
 * name, which is how a validator's late challenge is told apart from a lost request.
 */
import { InfermeshError, UsageError } from '../errors.ts';
import { handoffProofs, HandoffSealError, transcriptOf, transcriptSealed } from './handoff.ts';
import { recordStep } from './step-record.ts';
import type { StepRecord } from './step-record.ts';

/** The inputs of a request are no longer held: its retention window passed or memory ran short. */
export class RetentionExpiredError extends InfermeshError {
  override name = 'RetentionExpiredError';
}

export interface StepMeta {
  step: number;
  position: number;
  rows: number;
}

export interface StepJournalOptions {
  /** how long a request's inputs are kept after it started (default RETENTION_MS) */
  retentionMs?: number;
  /** retained input bytes across requests before the oldest closed ones are dropped (default 256 MiB) */
  maxBytes?: number;
  /**
   * Commit without checking the upstream's seals. A stage that does so answers for its
   * upstream's bad seals itself; tests set it to play a stage that commits to inputs it made up.
   */
  skipSealCheck?: boolean;
}

/** What a stage commits to for a request: its steps' records, their inputs sealed by `upstream`. */
export interface ClosedRequest {
  /** the peer that handed the stage its inputs and sealed them */
  upstream: string;
  /** the root of the transcript of those hand-offs, and the upstream's seal over it */
  upstreamRoot: Uint8Array;
  upstreamSeal: Uint8Array;
  /** each with its hand-off's proof under upstreamRoot */
  records: StepRecord[];
}

export interface StepJournal {
  /** Notes a step the stage ran; `input` is copied, `output` must not change afterwards. */
  record(requestId: string, meta: StepMeta, input: Float32Array, output: Float32Array): void;
  /** Notes `upstream`'s seal over the transcript of the request's first `steps` inputs (its SEAL). */
  seal(requestId: string, upstream: string, steps: number, seal: Uint8Array): void;
  /**
   * The request's records in step order with their hand-off proofs, once every one is computed;
   * the request takes no more steps. Inputs the upstream's seal does not cover are a HandoffSealError.
   */
  close(requestId: string): Promise<ClosedRequest>;
  /** The input rows of steps 0..`lastStep` of a request, for a reveal. */
  inputs(requestId: string, lastStep: number): Float32Array[];
  /** Drops a request (answered, or no longer wanted). */
  forget(requestId: string): void;
  /** Input bytes held now. */
  bytes(): number;
}

/** Ten minutes: longer than a validator takes to challenge (seconds) with room for a queue of replays. */
export const RETENTION_MS = 10 * 60_000;
const DEFAULT_MAX_BYTES = 256 << 20;

interface Entry {
  startedAt: number;
  closed: boolean;
  inputs: Float32Array[];
  records: Promise<StepRecord>[];
  upstream?: { peerId: string; steps: number; seal: Uint8Array };
  bytes: number;
}

export function createStepJournal(options: StepJournalOptions = {}, deps: { now?: () => number; defer?: (task: () => void) => void } = {}): StepJournal {
  const retentionMs = options.retentionMs ?? RETENTION_MS;
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const now = deps.now ?? Date.now;
  // A macrotask: the stage's write of this step's output (a microtask chain) goes first.
  const defer = deps.defer ?? ((task) => void setTimeout(task, 0));
  const entries = new Map<string, Entry>();
  const gone = new Map<string, string>();
  let total = 0;

  const drop = (id: string, why: string) => {
    const entry = entries.get(id);
    if (!entry) return;
    total -= entry.bytes;
    entries.delete(id);
    gone.set(id, why);
    if (gone.size > 4096) gone.delete(gone.keys().next().value!);
  };

  const expire = () => {
    const cutoff = now() - retentionMs;
    for (const [id, entry] of entries) if (entry.startedAt < cutoff) drop(id, `its retention window of ${retentionMs / 1000} s has passed`);
    for (const [id, entry] of entries) {
      if (total <= maxBytes) break;
      if (entry.closed) drop(id, `the stage needed the memory (${maxBytes} bytes of inputs held)`);
    }
  };

  return {
    record(requestId, meta, input, output) {
      let entry = entries.get(requestId);
      if (!entry) {
        if (meta.step !== 0) throw new UsageError(`request ${requestId} starts at step ${meta.step}; a journal starts at step 0`);
        expire();
        entries.set(requestId, (entry = { startedAt: now(), closed: false, inputs: [], records: [], bytes: 0 }));
      }
      if (entry.closed) throw new UsageError(`request ${requestId} has ended; it takes no more steps`);
      if (meta.step !== entry.inputs.length) throw new UsageError(`request ${requestId} expected step ${entry.inputs.length}, got ${meta.step}`);
      const kept = input.slice();
      entry.inputs.push(kept);
      entry.bytes += kept.byteLength;
      total += kept.byteLength;
      entry.records.push(new Promise<StepRecord>((resolve, reject) => defer(() => recordStep(kept, output, meta).then(resolve, reject))));
    },
    seal(requestId, upstream, steps, seal) {
      const entry = entries.get(requestId);
      // A request this journal does not note (trust off at its start, or forgotten): nothing to keep.
      if (!entry || entry.closed) return;
      if (entry.upstream) throw new HandoffSealError(`request ${requestId} is sealed already (by ${entry.upstream.peerId})`);
      entry.upstream = { peerId: upstream, steps, seal };
    },
    async close(requestId) {
      const entry = entries.get(requestId);
      if (!entry) throw new RetentionExpiredError(`request ${requestId} is not held: ${gone.get(requestId) ?? 'this stage never ran it'}`);
      entry.closed = true;
      const computed = await Promise.all(entry.records);
      expire();
      const { upstream } = entry;
      if (!upstream) throw new HandoffSealError(`request ${requestId} came without its upstream's seal`);
      const handoffs = computed.map((r) => ({ requestId, step: r.step, position: r.position, rows: r.rows, tensorSha256: r.inputSha256 }));
      const transcript = await transcriptOf(handoffs);
      if (!options.skipSealCheck) {
        if (upstream.steps !== computed.length) throw new HandoffSealError(`${upstream.peerId} sealed ${upstream.steps} steps of request ${requestId}; this stage ran ${computed.length}`);
        if (!(await transcriptSealed(transcript, upstream.seal, upstream.peerId))) {
          throw new HandoffSealError(`${upstream.peerId}'s seal of request ${requestId} does not cover the inputs this stage received`);
        }
      }
      const proofs = await handoffProofs(handoffs);
      return { upstream: upstream.peerId, upstreamRoot: transcript.root, upstreamSeal: upstream.seal, records: computed.map((r, i) => ({ ...r, handoffProof: proofs[i] })) };
    },
    inputs(requestId, lastStep) {
      expire();
      const entry = entries.get(requestId);
      if (!entry) throw new RetentionExpiredError(`the inputs of request ${requestId} are no longer held: ${gone.get(requestId) ?? 'this stage never ran it'}`);
      if (!Number.isInteger(lastStep) || lastStep < 0 || lastStep >= entry.inputs.length) {
        throw new UsageError(`request ${requestId} has steps 0..${entry.inputs.length - 1}, not ${lastStep}`);
      }
      return entry.inputs.slice(0, lastStep + 1);
    },
    forget: (requestId) => drop(requestId, 'it was answered'),
    bytes: () => total,
  };
}
