/**
 * Random-access bytes of a file, whatever holds them: a file handle in Node, a Blob or an
 * ArrayBuffer in the browser. Readers take a ByteSource so they stream large checkpoints
 * and stay free of Node-only APIs.
 */
export interface ByteSource {
  /** A path or URL for error messages. */
  name: string;
  size: number;
  /** Resolves with exactly `length` bytes, or rejects if the range runs past the end. */
  read(offset: number, length: number): Promise<Uint8Array>;
  close?(): Promise<void>;
}

export function bytesSource(name: string, bytes: Uint8Array): ByteSource {
  return {
    name,
    size: bytes.byteLength,
    async read(offset, length) {
      if (offset < 0 || offset + length > bytes.byteLength) {
        throw new RangeError(`${name}: read of ${length} bytes at ${offset} runs past the end (${bytes.byteLength} bytes)`);
      }
      return bytes.subarray(offset, offset + length);
    },
  };
}

/** Opens sibling files of a checkpoint (config.json, shards, tokenizer); null if absent. */
export interface FileOpener {
  open(path: string): Promise<ByteSource | null>;
  /** Joins a path relative to a directory the same way the host does. */
  join(dir: string, name: string): string;
}
