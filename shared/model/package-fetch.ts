/**
 * A model package read over HTTP (the server's package route, the swarm's web seed): one file at
 * a time, and files checked piece by piece against the manifest before anyone uses them. The
 * shard engine, the grid client and the donor page all read packages this way.
 */
import { PackageError } from '../errors.ts';
import { verifyFile } from './manifest.ts';
import type { Manifest } from './manifest.ts';

/** A package file's bytes by its path in the package. */
export type PackageFileReader = (path: string) => Promise<Uint8Array>;

export interface FetchPackageOptions {
  /** stops every fetch (the reader rejects with the signal's reason, an AbortError) */
  signal?: AbortSignal;
  /** told of each chunk of a file's bytes as it arrives, for a progress bar */
  onBytes?: (path: string, bytes: number) => void;
}

/** Reads files under `baseUrl` (absolute, or relative to the page) with `fetch`; a network failure or an HTTP error is a PackageError naming the URL. */
export function fetchPackageFiles(baseUrl: string, fetchFn: typeof fetch = fetch, options: FetchPackageOptions = {}): PackageFileReader {
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  const { signal, onBytes } = options;
  return async (path) => {
    const url = `${base}${path}`;
    signal?.throwIfAborted();
    const response = await fetchFn(url, { signal }).catch((err: unknown) => {
      if (signal?.aborted) throw signal.reason;
      throw new PackageError(`cannot fetch: ${(err as Error).message}`, { source: url, cause: err });
    });
    if (!response.ok) throw new PackageError(`fetch failed with HTTP ${response.status}`, { source: url });
    if (!onBytes || !response.body) return new Uint8Array(await response.arrayBuffer());
    const chunks: Uint8Array[] = [];
    let size = 0;
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        chunks.push(chunk);
        size += chunk.byteLength;
        onBytes(path, chunk.byteLength);
      }
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      throw new PackageError(`the download broke off after ${size} bytes: ${(err as Error).message}`, { source: url, cause: err });
    }
    const bytes = new Uint8Array(size);
    let at = 0;
    for (const c of chunks) {
      bytes.set(c, at);
      at += c.byteLength;
    }
    return bytes;
  };
}

/** A file the manifest lists, read and checked piece by piece; `pieces` is how many were checked. */
export async function readVerifiedFile(manifest: Manifest, path: string, read: PackageFileReader): Promise<{ bytes: Uint8Array; pieces: number }> {
  const entry = manifest.files.find((f) => f.path === path);
  if (!entry) throw new PackageError('file is not listed in the manifest', { source: path });
  const bytes = await read(path);
  return { bytes, pieces: await verifyFile(bytes, entry, manifest.pieceSize, path) };
}
