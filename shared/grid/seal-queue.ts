/**
 * A sender's hand-off seal on one STAGE stream (shared/trust/handoff.ts): each frame it sends is
 * hashed after it went out, in a later task, and `flush`, before the sender's END, signs the
 * transcript of them all once and sends it as a SEAL. Nothing is signed on a frame's path, and
 * nothing is parsed: the sender hands over the frame as it holds it already (it built it, or
 * parsed it once on receipt). Without a key nothing is sealed (trust is off).
 */
import type { PrivateKey } from '@libp2p/interface';
import type { HiddenFrame } from '../protocol/frame.ts';
import { handoffOfFrame, sealTranscript, transcriptOf } from '../trust/handoff.ts';
import type { Handoff } from '../trust/handoff.ts';
import { encodeSeal } from './stage-wire.ts';

export interface SealQueue {
  /** False without a key: frames need not be handed to `add` at all. */
  readonly sealing: boolean;
  /**
   * Notes a frame that was sent (hashed in a later task). Undefined: bytes went out that are no
   * frame (an engine's garbage); a transcript with a hole proves nothing, so no SEAL is sent.
   */
  add(frame: HiddenFrame | undefined): void;
  /** Seals every frame noted and writes the SEAL; resolves once written (or failed: the stream is then gone anyway). */
  flush(): Promise<void>;
}

export function createSealQueue(privateKey: PrivateKey | undefined, write: (bytes: Uint8Array) => Promise<void>): SealQueue {
  const handoffs: Promise<Handoff>[] = [];
  let unsealable = false;
  return {
    sealing: privateKey !== undefined,
    add(frame) {
      if (!privateKey) return;
      if (!frame) unsealable = true;
      else handoffs.push(new Promise((resolve, reject) => setTimeout(() => handoffOfFrame(frame).then(resolve, reject), 0)));
    },
    async flush() {
      if (!privateKey || unsealable || handoffs.length === 0) return;
      try {
        const transcript = await transcriptOf(await Promise.all(handoffs.splice(0)));
        await write(encodeSeal(transcript.steps, await sealTranscript(transcript, privateKey)));
      } catch {
        // Frames that were not steps 0..n-1 of one request, or a stream gone: the receiver commits to nothing unsealed.
      }
    },
  };
}
