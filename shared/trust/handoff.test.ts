import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { beforeAll, describe, expect, it } from 'vitest';
import type { PrivateKey } from '@libp2p/interface';
import { encodeFrame } from '../protocol/frame.ts';
import { handoffOfFrame, handoffSealed, publicKeyOf, sealHandoff } from './handoff.ts';
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

describe('hand-off seals', () => {
  it('seal what a frame carries, verifiable by the sender\'s peer id alone', async () => {
    const data = rows(3, 1);
    const frame = encodeFrame({ requestId: 'req-7', step: 0, position: 0, dims: [1, 3, WIDTH], data });
    const handoff = await handoffOfFrame(frame);
    expect(handoff).toEqual({ requestId: 'req-7', step: 0, position: 0, rows: 3, tensorSha256: await tensorSha256(data) });
    const seal = await sealHandoff(handoff, sender);
    expect(await handoffSealed(handoff, seal, senderId)).toBe(true);
  });

  it.each<[string, (h: Handoff) => Handoff]>([
    ['other bytes', (h) => ({ ...h, tensorSha256: h.tensorSha256.map((b, i) => (i === 0 ? b ^ 1 : b)) })],
    ['another step', (h) => ({ ...h, step: h.step + 1 })],
    ['another request', (h) => ({ ...h, requestId: 'req-8' })],
    ['other rows', (h) => ({ ...h, rows: h.rows + 1 })],
  ])('do not hold for %s', async (_, change) => {
    const handoff = await handoffOfFrame(encodeFrame({ requestId: 'req-7', step: 4, position: 9, dims: [1, 1, WIDTH], data: rows(1, 2) }));
    const seal = await sealHandoff(handoff, sender);
    expect(await handoffSealed(change(handoff), seal, senderId)).toBe(false);
  });

  it('do not hold under another peer\'s key, nor when empty; a bad peer id is named', async () => {
    const handoff = await handoffOfFrame(encodeFrame({ requestId: 'r', step: 0, position: 0, dims: [1, 1, WIDTH], data: rows(1, 3) }));
    const other = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString();
    expect(await handoffSealed(handoff, await sealHandoff(handoff, sender), other)).toBe(false);
    expect(await handoffSealed(handoff, new Uint8Array(0), senderId)).toBe(false);
    expect(() => publicKeyOf('not-a-peer')).toThrow(expect.objectContaining({ name: 'HandoffSealError', message: expect.stringContaining('"not-a-peer" is not a peer id') }));
  });
});

describe('the step journal with seals', () => {
  async function served(journal: ReturnType<typeof createStepJournal>, requestId: string, steps: number, seal: (step: number, handoff: Handoff) => Promise<Uint8Array | null>) {
    let position = 0;
    for (let step = 0; step < steps; step++) {
      const n = step === 0 ? 4 : 1;
      const input = rows(n, step);
      journal.record(requestId, { step, position, rows: n }, input, rows(n, 100 + step));
      const handoff = { requestId, step, position, rows: n, tensorSha256: await tensorSha256(input) };
      const s = await seal(step, handoff);
      if (s) journal.seal(requestId, senderId, step, s);
      position += n;
    }
  }

  it('puts each step\'s checked seal in its record and names the upstream', async () => {
    const journal = createStepJournal();
    await served(journal, 'ok', 3, (_, h) => sealHandoff(h, sender));
    const { upstream, records } = await journal.close('ok');
    expect(upstream).toBe(senderId);
    expect(records.map((r) => r.upstreamSeal.byteLength)).toEqual([64, 64, 64]);
  });

  it('refuses to close a request with a missing or wrong seal, naming the step', async () => {
    const journal = createStepJournal();
    await served(journal, 'gap', 3, (step, h) => (step === 1 ? Promise.resolve(null) : sealHandoff(h, sender)));
    await expect(journal.close('gap')).rejects.toMatchObject({ name: 'HandoffSealError', message: expect.stringContaining(`step 1 of request gap came without ${senderId}'s seal`) });
    await served(journal, 'wrong', 2, (step, h) => sealHandoff(step === 1 ? { ...h, position: 0 } : h, sender));
    await expect(journal.close('wrong')).rejects.toMatchObject({ name: 'HandoffSealError', message: expect.stringContaining('seal of step 1 of request wrong does not match the input received') });
    journal.record('none', { step: 0, position: 0, rows: 1 }, rows(1, 0), rows(1, 1));
    await expect(journal.close('none')).rejects.toMatchObject({ name: 'HandoffSealError', message: 'request none came without its upstream\'s seals' });
  });

  it('refuses seals of one request from a second upstream', async () => {
    const journal = createStepJournal();
    await served(journal, 'two', 1, (_, h) => sealHandoff(h, sender));
    expect(() => journal.seal('two', 'someone-else', 0, new Uint8Array(64))).toThrow(expect.objectContaining({ name: 'HandoffSealError' }));
  });

  it('with skipSealCheck, commits whatever seals it holds (a stage that answers for them itself)', async () => {
    const journal = createStepJournal({ skipSealCheck: true });
    await served(journal, 'lax', 2, (step, h) => sealHandoff(step === 1 ? { ...h, rows: 9 } : h, sender));
    expect((await journal.close('lax')).records).toHaveLength(2);
  });
});
