/**
 * Where a compiled package's files go. The Node implementation (worker/node/package-dir.ts) writes to
 * a temporary folder and renames it into place on commit, so a failed compile leaves nothing.
 */
export interface SinkFile {
  write(bytes: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

export interface PackageSink {
  create(path: string): Promise<SinkFile>;
  commit(): Promise<void>;
  abort(): Promise<void>;
}
