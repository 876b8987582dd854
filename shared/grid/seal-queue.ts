/**
 * A sender's hand-off seals on one STAGE stream (shared/trust/handoff.ts): each frame is sealed
 * after it went out, in a later task, and the SEAL follows it on the same stream, so the
 * receiver starts on the frame before the signature exists. `flush` waits for every seal
 * queued, before the sender's END. Without a key nothing is sealed (trust is off).
 */
import type { PrivateKey } from '@libp2p/interface';
import { handoffOfFrame, sealHandoff } from '../trust/handoff.ts';
import { encodeSeal } from './stage-wire.ts';

export interface SealQueue {
  /** Seals `frame` (already written) and writes its SEAL after it. */
  add(frame: Uint8Array): void;
  /** Resolves once every queued SEAL is written (or failed: the stream is then gone anyway). */
  flush(): Promise<void>;
}

export function createSealQueue(privateKey: PrivateKey | undefined, write: (bytes: Uint8Array) => Promise<void>): SealQueue {
  let tail: Promise<void> = Promise.resolve();
  return {
    add(frame) {
      if (!privateKey) return;
      tail = tail
        .then(() => new Promise((resolve) => setTimeout(resolve, 0)))
        .then(async () => {
          const handoff = await handoffOfFrame(frame);
          await write(encodeSeal(handoff.step, await sealHandoff(handoff, privateKey)));
        })
        .catch(() => undefined);
    },
    flush: () => tail,
  };
}
