/**
 * Maps a model package onto the pieces peers trade: which pieces a layer range or a set of
 * files needs, where a piece lies in its file (for web seed Range requests and checks), and
 * how to assemble files back from a PieceStore once every piece is held. Used by the swarm
 * fetcher, by donors before loading a shard, and by the coordinator's bookkeeping.
 */
import { PackageError, UsageError } from '../errors.ts';
import type { LayerRange } from '../runtime/stage.ts';
import { blockShards, sha256Hex } from '../model/manifest.ts';
import type { Manifest, PackageFile } from '../model/manifest.ts';
import { pieceKey } from './piece-plan.ts';
import type { PieceKey } from './piece-plan.ts';
import type { PieceStore } from './piece-store.ts';

export interface PieceLocation {
  key: PieceKey;
  file: PackageFile;
  index: number;
  /** byte offset of the piece in its file */
  offset: number;
  /** bytes in the piece (the last piece of a file may be short) */
  length: number;
  /** hex SHA-256 the piece's bytes must have */
  sha256: string;
}

export function piecesOfFile(file: PackageFile): PieceKey[] {
  return file.pieces.map((_, i) => pieceKey(file.path, i));
}

/** The pieces of the named files, in package order; an unknown path is a PackageError. */
export function piecesOfFiles(manifest: Manifest, paths: readonly string[]): PieceKey[] {
  const wanted = new Set(paths);
  for (const path of wanted) {
    if (!manifest.files.some((f) => f.path === path)) throw new PackageError(`the package has no file ${path}`, { source: manifest.name });
  }
  return manifest.files.filter((f) => wanted.has(f.path)).flatMap(piecesOfFile);
}

/** The files a stage serving `layers` loads: each block's graph and its weight data. */
export function filesForLayers(manifest: Manifest, layers: LayerRange): string[] {
  const n = manifest.config.nLayers;
  if (!Number.isInteger(layers.start) || !Number.isInteger(layers.end) || layers.start < 0 || layers.end > n || layers.start >= layers.end) {
    throw new UsageError(`layers ${layers.start}..${layers.end} are not a range of the package's ${n} layers (start inclusive, end exclusive)`);
  }
  return blockShards(manifest)
    .filter((s) => s.layer >= layers.start && s.layer < layers.end)
    .flatMap((s) => [s.graph, s.data]);
}

/** The pieces of the block graphs and weight data of `layers`, in package order. */
export function piecesForLayers(manifest: Manifest, layers: LayerRange): PieceKey[] {
  return piecesOfFiles(manifest, filesForLayers(manifest, layers));
}

/** Where a piece lies in the package; a key that names no piece is a PackageError. */
export function locatePiece(manifest: Manifest, key: PieceKey): PieceLocation {
  const hash = key.lastIndexOf('#');
  const path = key.slice(0, hash);
  const index = Number(key.slice(hash + 1));
  const file = hash > 0 ? manifest.files.find((f) => f.path === path) : undefined;
  if (!file || !Number.isInteger(index) || index < 0 || index >= file.pieces.length || key.slice(hash + 1) !== String(index)) {
    throw new PackageError(`${JSON.stringify(key)} is not a piece of the package`, { source: manifest.name });
  }
  const offset = index * manifest.pieceSize;
  return { key, file, index, offset, length: Math.min(manifest.pieceSize, file.size - offset), sha256: file.pieces[index] };
}

/** True when `bytes` are exactly the piece the manifest describes (length and SHA-256). */
export async function isPieceIntact(location: PieceLocation, bytes: Uint8Array): Promise<boolean> {
  return bytes.byteLength === location.length && (await sha256Hex(bytes)) === location.sha256;
}

/**
 * Builds whole files from a store's pieces (the manifest's id is the package id). Pieces were
 * verified before they were stored; the shard engine checks every piece's hash again on load.
 */
export async function assembleFiles(manifest: Manifest, store: PieceStore, paths: readonly string[]): Promise<Record<string, Uint8Array>> {
  const files: Record<string, Uint8Array> = {};
  for (const key of piecesOfFiles(manifest, paths)) {
    const at = locatePiece(manifest, key);
    const bytes = await store.get(manifest.id, key);
    if (!bytes) throw new PackageError(`piece ${key} is not in the piece store; fetch it before assembling ${at.file.path}`, { source: manifest.name });
    if (bytes.byteLength !== at.length) throw new PackageError(`stored piece ${key} has ${bytes.byteLength} bytes, the manifest says ${at.length}`, { source: manifest.name });
    const file = (files[at.file.path] ??= new Uint8Array(at.file.size));
    file.set(bytes, at.offset);
  }
  return files;
}
