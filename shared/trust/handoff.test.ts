import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { beforeAll, describe, expect, it } from 'vitest';
import type { PrivateKey } from '@libp2p/interface';
import { decodeFrame, encodeFrame } from '../protocol/frame.ts';
import { handoffInTranscript, handoffOfFrame, handoffProofs, HandoffSealError, sealTranscript, transcriptOf, transcriptSealed } from './handoff.ts';
import { peerPublicKey } from './peer-key.ts';
import type { Handoff } from './handoff.ts';
import { createStepJournal } from './step-journal.ts';
import { tensorSha256 } from './step-record.ts';

const WIDTH = 16;
const rows = (n: number, seed: number) => Float32Array.from({ length: n * WIDTH }, (_, i) => Math.sin(seed + i * 0.3));

let sender: PrivateKey;
let senderId: string;
beforeAll(async () => {
  sender = await generateKeyPair('Ed25519');
  senderId = peerIdFromPrivateKey(sender).toString();
});

/** The hand-off of a frame as it crossed the wire (handoffOfFrame takes it parsed, as a sender holds it). */
const handoffOfBytes = (frame: Uint8Array) => handoffOfFrame(decodeFrame(frame));

/** A request's frames as a client sends them: a 4-row prompt, then one row a step. */
async function sentFrames(requestId: string, steps: number): Promise<{ frames: Uint8Array[]; inputs: Float32Array[] }> {
  const frames: Uint8Array[] = [];
  const inputs: Float32Array[] = [];
  let position = 0;
  for (let step = 0; step < steps; step++) {
    const n = step === 0 ? 4 : 1;
    inputs.push(rows(n, step));
    frames.push(encodeFrame({ requestId, step, position, dims: [1, n, WIDTH], data: inputs[step] }));
    position += n;
  }
  return { frames, inputs };
}

describe('hand-off transcripts', () => {
  it('cover what each frame carries; one seal over the root, verifiable by the sender\'s peer id alone', async () => {
    const { frames, inputs } = await sentFrames('req-7', 5);
    const handoffs = await Promise.all(frames.map(handoffOfBytes));
    expect(handoffs[2]).toEqual({ requestId: 'req-7', step: 2, position: 5, rows: 1, tensorSha256: await tensorSha256(inputs[2]) });
    const transcript = await transcriptOf(handoffs);
    expect(transcript.steps).toBe(5);
    const seal = await sealTranscript(transcript, sender);
    expect(await transcriptSealed(transcript, seal, senderId)).toBe(true);
    const proofs = await handoffProofs(handoffs);
    for (const [i, h] of handoffs.entries()) expect(await handoffInTranscript(h, proofs[i], transcript)).toBe(true);
  });

  it.each<[string, (h: Handoff) => Handoff]>([
    ['other bytes', (h) => ({ ...h, tensorSha256: h.tensorSha256.map((b, i) => (i === 0 ? b ^ 1 : b)) })],
    ['another position', (h) => ({ ...h, position: h.position + 1 })],
    ['another request', (h) => ({ ...h, requestId: 'req-8' })],
    ['other rows', (h) => ({ ...h, rows: h.rows + 1 })],
  ])('prove no hand-off with %s', async (_, change) => {
    const handoffs = await Promise.all((await sentFrames('req-7', 4)).frames.map(handoffOfBytes));
    const transcript = await transcriptOf(handoffs);
    const proofs = await handoffProofs(handoffs);
    expect(await handoffInTranscript(change(handoffs[3]), proofs[3], transcript)).toBe(false);
    expect(await handoffInTranscript(handoffs[2], proofs[3], transcript)).toBe(false);
  });

  it('seals hold under no other key, length, or root; a bad peer id is named', async () => {
    const transcript = await transcriptOf(await Promise.all((await sentFrames('r', 3)).frames.map(handoffOfBytes)));
    const seal = await sealTranscript(transcript, sender);
    const other = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString();
    expect(await transcriptSealed(transcript, seal, other)).toBe(false);
    expect(await transcriptSealed({ ...transcript, steps: 2 }, seal, senderId)).toBe(false);
    expect(await transcriptSealed({ ...transcript, root: new Uint8Array(32) }, seal, senderId)).toBe(false);
    expect(await transcriptSealed(transcript, new Uint8Array(0), senderId)).toBe(false);
    expect(() => peerPublicKey('not-a-peer', HandoffSealError)).toThrow(expect.objectContaining({ name: 'HandoffSealError', message: expect.stringContaining('"not-a-peer" is not a peer id') }));
  });

  it('cover steps 0..n-1 of one request only', async () => {
    const handoffs = await Promise.all((await sentFrames('r', 3)).frames.map(handoffOfBytes));
    await expect(transcriptOf([handoffs[0], handoffs[2]])).rejects.toMatchObject({ name: 'UsageError' });
    await expect(transcriptOf([])).rejects.toMatchObject({ name: 'UsageError' });
  });
});

describe('the step journal with its upstream\'s seal', () => {
  /** Records a request's steps as a stage serves them; `sealed` changes what the upstream seals. */
  async function served(journal: ReturnType<typeof createStepJournal>, requestId: string, steps: number, sealed: (frames: Uint8Array[]) => Uint8Array[] = (f) => f) {
    const { frames, inputs } = await sentFrames(requestId, steps);
    inputs.forEach((input, step) => {
      const n = step === 0 ? 4 : 1;
      journal.record(requestId, { step, position: step === 0 ? 0 : 3 + step, rows: n }, input, rows(n, 100 + step));
    });
    const sealedFrames = sealed(frames);
    const transcript = await transcriptOf(await Promise.all(sealedFrames.map(handoffOfBytes)));
    journal.seal(requestId, senderId, sealedFrames.length, await sealTranscript(transcript, sender));
    return transcript;
  }

  it('checks the seal against the inputs recorded and gives each record its proof', async () => {
    const journal = createStepJournal();
    const transcript = await served(journal, 'ok', 3);
    const closed = await journal.close('ok');
    expect(closed.upstream).toBe(senderId);
    expect(closed.upstreamRoot).toEqual(transcript.root);
    expect(closed.upstreamSeal.byteLength).toBe(64);
    for (const r of closed.records) {
      const handoff = { requestId: 'ok', step: r.step, position: r.position, rows: r.rows, tensorSha256: r.inputSha256 };
      expect(await handoffInTranscript(handoff, r.handoffProof, transcript)).toBe(true);
    }
  });

  it('refuses to close a request its upstream sealed otherwise, or not at all, naming the problem', async () => {
    const journal = createStepJournal();
    await served(journal, 'short', 3, (f) => f.slice(0, 2));
    await expect(journal.close('short')).rejects.toMatchObject({ name: 'HandoffSealError', message: `${senderId} sealed 2 steps of request short; this stage ran 3` });
    await served(journal, 'wrong', 3, (f) => [f[0], encodeFrame({ requestId: 'wrong', step: 1, position: 4, dims: [1, 1, WIDTH], data: rows(1, 99) }), f[2]]);
    await expect(journal.close('wrong')).rejects.toMatchObject({ name: 'HandoffSealError', message: `${senderId}'s seal of request wrong does not cover the inputs this stage received` });
    journal.record('none', { step: 0, position: 0, rows: 1 }, rows(1, 0), rows(1, 1));
    await expect(journal.close('none')).rejects.toMatchObject({ name: 'HandoffSealError', message: 'request none came without its upstream\'s seal' });
  });

  it('takes one seal per request', async () => {
    const journal = createStepJournal();
    await served(journal, 'twice', 1);
    expect(() => journal.seal('twice', 'someone-else', 1, new Uint8Array(64))).toThrow(expect.objectContaining({ name: 'HandoffSealError' }));
  });

  it('with skipSealCheck, commits whatever it recorded (a stage that answers for its inputs itself)', async () => {
    const journal = createStepJournal({ skipSealCheck: true });
    await served(journal, 'lax', 2, (f) => f.slice(0, 1));
    expect((await journal.close('lax')).records).toHaveLength(2);
  });
});
