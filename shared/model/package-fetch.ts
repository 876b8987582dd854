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

/** Reads files under `baseUrl` (absolute, or relative to the page) with `fetch`; a network failure or an HTTP error is a PackageError naming the URL. */
export function fetchPackageFiles(baseUrl: string, fetchFn: typeof fetch = fetch): PackageFileReader {
  const base = baseUrl.endsWith('/') ? baseUrl : `${baseUrl}/`;
  return async (path) => {
    const url = `${base}${path}`;
    const response = await fetchFn(url).catch((err: unknown) => {
      throw new PackageError(`cannot fetch: ${(err as Error).message}`, { source: url, cause: err });
    });
    if (!response.ok) throw new PackageError(`fetch failed with HTTP ${response.status}`, { source: url });
    return new Uint8Array(await response.arrayBuffer());
  };
}

/** A file the manifest lists, read and checked piece by piece; `pieces` is how many were checked. */
export async function readVerifiedFile(manifest: Manifest, path: string, read: PackageFileReader): Promise<{ bytes: Uint8Array; pieces: number }> {
  const entry = manifest.files.find((f) => f.path === path);
  if (!entry) throw new PackageError('file is not listed in the manifest', { source: path });
  const bytes = await read(path);
  return { bytes, pieces: await verifyFile(bytes, entry, manifest.pieceSize, path) };
}
