/** Node's file system behind the isomorphic ByteSource / FileOpener interfaces of shared/model. */
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import type { ByteSource, FileOpener } from '../../shared/model/byte-source.ts';

export async function openFileSource(path: string): Promise<ByteSource> {
  const handle = await open(path, 'r');
  const { size } = await handle.stat();
  return {
    name: path,
    size,
    async read(offset, length) {
      if (offset < 0 || offset + length > size) {
        throw new RangeError(`${path}: read of ${length} bytes at ${offset} runs past the end (${size} bytes)`);
      }
      const buf = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(buf, done, length - done, offset + done);
        if (bytesRead === 0) throw new RangeError(`${path}: file ended while reading at ${offset + done}`);
        done += bytesRead;
      }
      return buf;
    },
    close: () => handle.close(),
  };
}

export const nodeFileOpener: FileOpener = {
  async open(path) {
    try {
      return await openFileSource(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  },
  join,
};
