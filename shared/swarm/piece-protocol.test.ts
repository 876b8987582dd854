import { describe, expect, it } from 'vitest';
import { lpStream, streamPair } from '@libp2p/utils';
import { MAX_CONTROL_BYTES } from '../grid/protocol.ts';
import { handlePieceStream, PIECE_BAD_REQUEST, PIECE_NOT_HELD, PIECE_OK, requestPiece } from './piece-protocol.ts';
import type { ServePiecesOptions } from './piece-protocol.ts';
import { createMemoryPieceStore } from './piece-store.ts';
import { corruptingStore } from '../../testkit/swarm/corrupting-store.ts';

const PKG = 'pkg-1';
const piece = Uint8Array.from({ length: 3000 }, (_, i) => (i * 7) & 0xff);

async function servedStore() {
  const store = createMemoryPieceStore();
  await store.put(PKG, 'block-0.data#0', piece);
  return store;
}

/** An outbound stream whose other end is answered by the piece server. */
async function connect(options: ServePiecesOptions) {
  const [outbound, inbound] = await streamPair();
  const served = handlePieceStream(inbound, options);
  return { stream: outbound, served, inbound };
}

describe('piece protocol', () => {
  it('answers a held piece with status ok and its bytes, several requests on one stream', async () => {
    const { stream, served } = await connect({ store: await servedStore() });
    for (let i = 0; i < 3; i++) {
      const answer = await requestPiece(stream, PKG, 'block-0.data#0');
      expect(answer).toEqual({ status: 'ok', bytes: piece });
    }
    await stream.close();
    await served;
  });

  it('answers "not held" for a piece or a package it does not have, or does not share', async () => {
    const { stream } = await connect({ store: await servedStore(), packageIds: () => new Set([PKG]) });
    expect(await requestPiece(stream, PKG, 'block-0.data#1')).toEqual({ status: 'not-held' });
    expect(await requestPiece(stream, 'other', 'block-0.data#0')).toEqual({ status: 'not-held' });
    const hidden = await connect({ store: await servedStore(), packageIds: () => new Set() });
    expect(await requestPiece(hidden.stream, PKG, 'block-0.data#0')).toEqual({ status: 'not-held' });
  });

  it('refuses malformed requests with status 2 and a reason, and keeps serving the stream', async () => {
    const { stream } = await connect({ store: await servedStore() });
    const lp = lpStream(stream, { maxDataLength: 2 << 20 });
    const ask = async (text: string) => {
      await lp.write(new TextEncoder().encode(text));
      const reply = (await lp.read()).subarray();
      return { status: reply[0], reason: new TextDecoder().decode(reply.subarray(1)) };
    };
    expect(await ask('not json')).toEqual({ status: PIECE_BAD_REQUEST, reason: 'request is not UTF-8 JSON' });
    expect(await ask('[1,2]')).toEqual({ status: PIECE_BAD_REQUEST, reason: 'request must be a JSON object {"packageId", "piece"}' });
    expect(await ask('{"piece":"a#0"}')).toEqual({ status: PIECE_BAD_REQUEST, reason: 'request.packageId must be a non-empty string' });
    expect(await ask(`{"packageId":"${PKG}","piece":"block-0.data"}`)).toEqual({ status: PIECE_BAD_REQUEST, reason: 'request.piece must be a piece key "<file>#<index>"' });
    expect(await ask(`{"packageId":"${PKG}","piece":"block-0.data#01"}`)).toMatchObject({ status: PIECE_BAD_REQUEST });
    expect(await ask(`{"packageId":"${PKG}","piece":"block-0.data#9"}`)).toEqual({ status: PIECE_NOT_HELD, reason: '' });
    const ok = await ask(`{"packageId":"${PKG}","piece":"block-0.data#0"}`);
    expect(ok.status).toBe(PIECE_OK);
  });

  it('answers a request larger than a control message with status 2, then ends the stream', async () => {
    const { stream, served } = await connect({ store: await servedStore() });
    const lp = lpStream(stream, { maxDataLength: 2 << 20 });
    await lp.write(new Uint8Array(MAX_CONTROL_BYTES + 1));
    const reply = (await lp.read()).subarray();
    expect(reply[0]).toBe(PIECE_BAD_REQUEST);
    expect(new TextDecoder().decode(reply.subarray(1))).toMatch(/at most 1048576 bytes/);
    await served;
  });

  it('from the test kit\'s corrupting store, serves every piece with its bits flipped', async () => {
    const { stream } = await connect({ store: corruptingStore(await servedStore()) });
    const answer = await requestPiece(stream, PKG, 'block-0.data#0');
    expect(answer.status).toBe('ok');
    const bytes = (answer as { bytes: Uint8Array }).bytes;
    expect(bytes.byteLength).toBe(piece.byteLength);
    expect(bytes.every((b, i) => b === (piece[i] ^ 0xff))).toBe(true);
  });

  it('the stored piece stays intact after a corrupt serve', async () => {
    const store = await servedStore();
    const { stream } = await connect({ store: corruptingStore(store) });
    await requestPiece(stream, PKG, 'block-0.data#0');
    expect(await store.get(PKG, 'block-0.data#0')).toEqual(piece);
  });
});
