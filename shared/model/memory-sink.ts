/**
 * A PackageSink that keeps the package in memory, for compiling where there is no file system:
 * a browser tab or worker (the device handshake compiles one block to time it) and tests.
 * Like the directory sink, nothing is visible until commit, and abort leaves nothing.
 */
import { PackageError } from '../errors.ts';
import type { PackageSink } from './package-sink.ts';

export interface MemorySink extends PackageSink {
  /** The committed files by package path; empty before commit and after abort. */
  files(): ReadonlyMap<string, Uint8Array>;
  /** One committed file; a PackageError when the package has no such file. */
  read(path: string): Uint8Array;
}

export function createMemorySink(name = 'memory package'): MemorySink {
  const pending = new Map<string, Uint8Array | null>();
  let committed = new Map<string, Uint8Array>();
  let state: 'open' | 'committed' | 'aborted' = 'open';
  const fail = (message: string, path?: string): never => {
    throw new PackageError(message, { source: path ? `${name}/${path}` : name });
  };

  return {
    async create(path) {
      if (state !== 'open') fail(`cannot create a file in a package that was ${state}`, path);
      if (pending.has(path)) fail('file was created twice', path);
      pending.set(path, null);
      // Writes are copied: the compiler may reuse its buffers once a write has resolved.
      const chunks: Uint8Array[] = [];
      let closed = false;
      return {
        async write(bytes) {
          if (closed) fail('write after close', path);
          chunks.push(bytes.slice());
        },
        async close() {
          if (closed) return;
          closed = true;
          const size = chunks.reduce((n, c) => n + c.byteLength, 0);
          const whole = new Uint8Array(size);
          let at = 0;
          for (const c of chunks) {
            whole.set(c, at);
            at += c.byteLength;
          }
          chunks.length = 0;
          if (state === 'open') pending.set(path, whole);
        },
      };
    },
    async commit() {
      if (state !== 'open') fail(`cannot commit a package that was ${state}`);
      const unclosed = [...pending].filter(([, bytes]) => bytes === null).map(([path]) => path);
      if (unclosed.length > 0) fail(`cannot commit with files still open: ${unclosed.join(', ')}`);
      committed = new Map(pending as Map<string, Uint8Array>);
      pending.clear();
      state = 'committed';
    },
    async abort() {
      pending.clear();
      committed = new Map();
      state = 'aborted';
    },
    files: () => committed,
    read(path) {
      const bytes = committed.get(path);
      if (!bytes) fail(state === 'committed' ? 'no such file in the package' : `package was not committed (${state})`, path);
      return bytes!;
    },
  };
}
