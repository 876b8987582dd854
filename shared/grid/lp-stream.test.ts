/**
 * Length-prefixed streams with every bound set, over a pair of in-memory libp2p streams: a
 * message past libp2p's 4 MiB read buffer is read whole when the limit allows it; a length
 * prefix that never ends, one over the limit, and a message that stops half-way are refused
 * by name instead of being read for ever.
 */
import { describe, expect, it } from 'vitest';
import { lpStream, streamPair } from '@libp2p/utils';
import { boundedLpStream, FRAMING_ERRORS, varintLength } from './lp-stream.ts';

const MiB = 1 << 20;

describe('boundedLpStream', () => {
  it('reads a message larger than the 4 MiB libp2p buffers by default, which plain lpStream resets', async () => {
    const message = Uint8Array.from({ length: 5 * MiB }, (_, i) => i & 0xff);
    const [a, b] = await streamPair({ delay: 0 });
    const read = boundedLpStream(b, 8 * MiB).read();
    await lpStream(a).write(message);
    // Compared as bytes: a deep equality of 5 Mi elements takes vitest half a minute.
    expect(Buffer.compare((await read).subarray(), message)).toBe(0);

    const [c, d] = await streamPair({ delay: 0 });
    const plain = lpStream(d, { maxDataLength: 8 * MiB }).read();
    await lpStream(c).write(message).catch(() => undefined);
    await expect(plain).rejects.toMatchObject({ name: 'StreamBufferError' });
  });

  it('refuses a length prefix longer than the largest message needs, however long it goes on', async () => {
    const [a, b] = await streamPair();
    const read = boundedLpStream(b, MiB).read();
    a.send(new Uint8Array(1000).fill(0x80));
    const err = await read.catch((e: Error) => e);
    expect(err).toMatchObject({ name: 'FrameLengthError', message: `a length prefix of more than ${varintLength(MiB)} bytes: no message here is over ${MiB} bytes` });
    expect(FRAMING_ERRORS.has((err as Error).name)).toBe(true);
  });

  it('refuses a length over the limit before reading it', async () => {
    const [a, b] = await streamPair();
    const read = boundedLpStream(b, 1000).read();
    a.send(Uint8Array.of(0xe9, 0x07)); // 1001
    await expect(read).rejects.toMatchObject({ name: 'InvalidDataLengthError' });
  });

  it('waits for a message as long as it takes, then gives a started one messageTimeoutMs to finish', async () => {
    const [a, b] = await streamPair();
    const lp = boundedLpStream(b, 1000, { messageTimeoutMs: 200 });
    const idle = lp.read();
    await new Promise((r) => setTimeout(r, 400));
    await lpStream(a).write(Uint8Array.of(1, 2, 3));
    expect((await idle).subarray()).toEqual(Uint8Array.of(1, 2, 3));

    const started = Date.now();
    const partial = lp.read();
    a.send(Uint8Array.of(10, 1, 2)); // 10 bytes promised, 2 sent
    await expect(partial).rejects.toMatchObject({ name: 'FrameTimeoutError' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
  });

  it('varintLength is the length of the varint lpStream writes', () => {
    expect([0, 127, 128, 16383, 16384, MiB, 2 ** 31].map(varintLength)).toEqual([1, 1, 2, 2, 3, 3, 5]);
  });
});
