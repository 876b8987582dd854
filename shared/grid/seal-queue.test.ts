import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { describe, expect, it } from 'vitest';
import type { HiddenFrame } from '../protocol/frame.ts';
import { handoffOfFrame, transcriptOf, transcriptSealed } from '../trust/handoff.ts';
import { createSealQueue } from './seal-queue.ts';
import { decodeStageMessage } from './stage-wire.ts';

const frames: HiddenFrame[] = [4, 1, 1].map((rows, step) => ({ requestId: 'r', step, position: step === 0 ? 0 : 3 + step, dims: [1, rows, 8], data: new Float32Array(rows * 8).fill(step + 0.5) }));

/** A queue over a key, and the messages it wrote. */
async function queue(withKey = true) {
  const key = await generateKeyPair('Ed25519');
  const written: Uint8Array[] = [];
  const seals = createSealQueue(withKey ? key : undefined, async (bytes) => void written.push(bytes));
  return { seals, written, sender: peerIdFromPrivateKey(key).toString() };
}

describe('the seal queue', () => {
  it('seals the frames it was handed, as they were handed (parsed), with one SEAL at flush', async () => {
    const { seals, written, sender } = await queue();
    expect(seals.sealing).toBe(true);
    frames.forEach((f) => seals.add(f));
    await seals.flush();
    expect(written).toHaveLength(1);
    const message = decodeStageMessage(written[0]);
    if (message.kind !== 'seal') throw new Error(`expected a SEAL, got ${message.kind}`);
    expect(message.steps).toBe(3);
    const transcript = await transcriptOf(await Promise.all(frames.map(handoffOfFrame)));
    expect(await transcriptSealed(transcript, message.seal, sender)).toBe(true);
  });

  it('sends no SEAL once bytes that were no frame went out: a transcript with a hole proves nothing', async () => {
    const { seals, written } = await queue();
    seals.add(frames[0]);
    seals.add(undefined);
    seals.add(frames[2]);
    await seals.flush();
    expect(written).toEqual([]);
  });

  it('seals nothing without a key, and says so', async () => {
    const { seals, written } = await queue(false);
    expect(seals.sealing).toBe(false);
    frames.forEach((f) => seals.add(f));
    await seals.flush();
    expect(written).toEqual([]);
  });
});
