/**
 * A sender's hand-off seal on one STAGE stream (shared/trust/handoff.ts): each frame it sends is
 * hashed after it went out, in a later task, and `flush`, before the sender's END, signs the
 * transcript of them all once and sends it as a SEAL. Nothing is signed on a frame's path.
 * Without a key nothing is sealed (trust is off).
 */
import type { PrivateKey } from '@libp2p/interface';
import { handoffOfFrame, sealTranscript, transcriptOf } from '../trust/handoff.ts';
import type { Handoff } from '../trust/handoff.ts';
import { encodeSeal } from './stage-wire.ts';

export interface SealQueue {
  /** Notes a frame that was sent (hashed in a later task). */
  add(frame: Uint8Array): void;
  /** Seals every frame noted and writes the SEAL; resolves once written (or failed: the stream is then gone anyway). */
  flush(): Promise<void>;
}

export function createSealQueue(privateKey: PrivateKey | undefined, write: (bytes: Uint8Array) => Promise<void>): SealQueue {
  const handoffs: Promise<Handoff>[] = [];
  return {
    add(frame) {
      if (!privateKey) return;
      handoffs.push(new Promise((resolve, reject) => setTimeout(() => handoffOfFrame(frame).then(resolve, reject), 0)));
    },
    async flush() {
      if (!privateKey || handoffs.length === 0) return;
      try {
        const transcript = await transcriptOf(await Promise.all(handoffs.splice(0)));
        await write(encodeSeal(transcript.steps, await sealTranscript(transcript, privateKey)));
      } catch {
        // A frame that was not a frame, or a stream gone: the receiver commits to nothing unsealed.
      }
    },
  };
}
