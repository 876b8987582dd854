/**
 * A stage answering for the requests it served: when a request ends, it signs a commitment
 * over the request's step records with its libp2p key and sends it to the validator (the
 * server) on a TRUST_PROTOCOL stream, then reveals the records and inputs of the steps the
 * validator challenges. Runs after the request is over: generation never waits for it.
 * Donor tabs and Node stage peers use it beside serveStage (stage-server.ts).
 */
import type { Libp2p } from 'libp2p';
import type { PeerId, PrivateKey } from '@libp2p/interface';
import { lpStream } from '@libp2p/utils';
import { InfermeshError } from '../errors.ts';
import type { LayerRange } from '../runtime/stage.ts';
import { encodeSignedCommitment, revealRecords, signCommitment } from '../trust/commitment.ts';
import { encodeStepRecord } from '../trust/step-record.ts';
import type { StepRecord } from '../trust/step-record.ts';
import type { StepJournal } from '../trust/step-journal.ts';
import { TRUST_PROTOCOL } from './protocol-ids.ts';
import { decodeTrustMessage, encodeCommit, encodeReveal, MAX_TRUST_CONTROL_BYTES } from './trust-wire.ts';
import type { Challenge } from './trust-wire.ts';

/** The validator refused a commitment or a reveal; its reason is the message. */
export class AttestationRefusedError extends InfermeshError {
  override name = 'AttestationRefusedError';
  /** the name of the validator's refusal (e.g. 'RevealInvalidError'), when it sent one */
  readonly refusal?: string;

  constructor(message: string, options: { refusal?: string } = {}) {
    super(message);
    this.refusal = options.refusal;
  }
}

/** A validator busy with other stages' answers is asked again this many times, waiting longer each time. */
const BUSY_ATTEMPTS = 3;
const BUSY_BACKOFF_MS = 500;

export interface AttestorOptions {
  packageId: string;
  layers: LayerRange;
}

export interface AttestorDeps {
  node: Libp2p;
  privateKey: PrivateKey;
  journal: StepJournal;
  /** the validator's peer id (the server's relay node) */
  validator: PeerId;
  /** test-only: what the stage sends instead of the truth (a tampered reveal, a late answer) */
  tamper?: { reveal?: (reveal: Parameters<typeof encodeReveal>[0]) => void; delayRevealMs?: number };
}

export interface AttestationOutcome {
  requestId: string;
  steps: number;
  challenged: number[];
  /** bytes sent to the validator: commitment and reveal */
  proofBytes: number;
  /** of which the commitment (sent for every request; the reveal only answers a challenge) */
  commitmentBytes: number;
}

export interface Attestor {
  /** Commits to a finished request, answers the challenge, and forgets the request. */
  attest(requestId: string): Promise<AttestationOutcome>;
  /** Attestations in progress (for a page that is closing). */
  pending(): number;
}

export function createAttestor(options: AttestorOptions, deps: AttestorDeps): Attestor {
  let inProgress = 0;

  async function attest(requestId: string): Promise<AttestationOutcome> {
    const { upstream, upstreamRoot, upstreamSeal, records } = await deps.journal.close(requestId);
    const signed = await signCommitment(records, { packageId: options.packageId, requestId, upstream, upstreamRoot, upstreamSeal, layers: options.layers }, deps.privateKey);
    const commitBytes = encodeCommit(encodeSignedCommitment(signed));
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          return await answer(requestId, commitBytes, records);
        } catch (err) {
          if ((err as AttestationRefusedError).refusal !== 'ValidatorBusyError' || attempt >= BUSY_ATTEMPTS) throw err;
          await new Promise((r) => setTimeout(r, BUSY_BACKOFF_MS * attempt));
        }
      }
    } finally {
      deps.journal.forget(requestId);
    }
  }

  /** One trust stream: the commitment, the challenge, the reveal, the receipt. */
  async function answer(requestId: string, commitBytes: Uint8Array, records: StepRecord[]): Promise<AttestationOutcome> {
    const stream = await deps.node.dialProtocol(deps.validator, TRUST_PROTOCOL);
    const wire = lpStream(stream, { maxDataLength: MAX_TRUST_CONTROL_BYTES });
    try {
      await wire.write(commitBytes);
      const challenge = expect(decodeTrustMessage((await wire.read()).subarray()), 'challenge').challenge as Challenge;
      // Every step up to the last challenged one: its output depends on all of them (the KV cache).
      const last = challenge.steps.length > 0 ? Math.max(...challenge.steps) : -1;
      const indices = Array.from({ length: last + 1 }, (_, i) => i);
      const reveal = {
        records: (await revealRecords(records, indices)).map((r) => ({ index: r.index, record: encodeStepRecord(r.record), proof: r.proof })),
        inputs: last >= 0 ? deps.journal.inputs(requestId, last) : [],
      };
      deps.tamper?.reveal?.(reveal);
      if (deps.tamper?.delayRevealMs) await new Promise((r) => setTimeout(r, deps.tamper!.delayRevealMs));
      const revealBytes = encodeReveal(reveal);
      await wire.write(revealBytes);
      expect(decodeTrustMessage((await wire.read()).subarray()), 'receipt');
      return { requestId, steps: records.length, challenged: challenge.steps, proofBytes: commitBytes.byteLength + revealBytes.byteLength, commitmentBytes: commitBytes.byteLength };
    } finally {
      await stream.close().catch((err: Error) => stream.abort(err));
    }
  }

  return {
    async attest(requestId) {
      inProgress++;
      try {
        return await attest(requestId);
      } finally {
        inProgress--;
      }
    },
    pending: () => inProgress,
  };
}

function expect<K extends 'challenge' | 'receipt'>(message: ReturnType<typeof decodeTrustMessage>, kind: K) {
  if (message.kind === 'error') throw new AttestationRefusedError(`the validator refused: ${message.failure.name}: ${message.failure.message}`, { refusal: message.failure.name });
  if (message.kind !== kind) throw new AttestationRefusedError(`the validator sent ${message.kind.toUpperCase()} where ${kind.toUpperCase()} was due`);
  return message as Extract<typeof message, { kind: K }>;
}
