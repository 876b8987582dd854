/**
 * The model package's manifest: what a node needs to fetch, verify and run a shard.
 * Every file is cut into 1 MiB pieces with a SHA-256 each (the unit peers trade), and the
 * package id is the SHA-256 of the canonical manifest without its id, so two packages with
 * the same id hold the same bytes.
 */
import type { ModelConfig } from './config.ts';
import type { WeightDtype } from './graphs/linear.ts';
import { PackageError } from '../errors.ts';
import { manifestShapeProblem } from './manifest-shape.ts';

export const MANIFEST_FILE = 'manifest.json';
/**
 * Bumped whenever a graph's inputs or outputs change, so a runtime never opens a package
 * compiled for another interface. 2: KV caches are position-major and blocks return new rows.
 */
export const PACKAGE_FORMAT = 'infermesh-package/2';
/** 1 MiB: BitTorrent-sized pieces, small enough to re-fetch cheaply after a bad hash. */
export const PIECE_SIZE = 1 << 20;

export interface PackageFile {
  path: string;
  size: number;
  /** hex SHA-256 of each PIECE_SIZE slice, in order */
  pieces: string[];
}

export type Shard =
  | { kind: 'embed'; graph: string; data: string }
  | { kind: 'block'; layer: number; graph: string; data: string }
  | { kind: 'head'; graph: string; data: string };

export type PackageTokenizer =
  | { kind: 'llama2c'; file: string }
  | { kind: 'huggingface'; file: string; configFile?: string };

export interface Manifest {
  format: typeof PACKAGE_FORMAT;
  /** sha-256 hex of canonicalJson(manifest without id) */
  id: string;
  name: string;
  source: string;
  architecture: ModelConfig['architecture'];
  config: ModelConfig;
  dtype: WeightDtype;
  tokenizer: PackageTokenizer;
  pieceSize: number;
  shards: Shard[];
  files: PackageFile[];
}

/** JSON with sorted keys and no whitespace: the bytes the id is computed over. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, '0')).join('');
}

export async function manifestId(manifest: Omit<Manifest, 'id'>): Promise<string> {
  const { id: _ignored, ...rest } = manifest as Manifest;
  return sha256Hex(new TextEncoder().encode(canonicalJson(rest)));
}

/** Hashes a byte stream piece by piece as it is written. */
export function createPieceHasher(pieceSize = PIECE_SIZE) {
  const pieces: Promise<string>[] = [];
  let buffer = new Uint8Array(pieceSize);
  let filled = 0;
  let size = 0;
  return {
    push(bytes: Uint8Array) {
      size += bytes.byteLength;
      let at = 0;
      while (at < bytes.byteLength) {
        const n = Math.min(pieceSize - filled, bytes.byteLength - at);
        buffer.set(bytes.subarray(at, at + n), filled);
        filled += n;
        at += n;
        if (filled === pieceSize) {
          pieces.push(sha256Hex(buffer));
          buffer = new Uint8Array(pieceSize);
          filled = 0;
        }
      }
    },
    async finish(path: string): Promise<PackageFile> {
      if (filled > 0 || size === 0) pieces.push(sha256Hex(buffer.slice(0, filled)));
      return { path, size, pieces: await Promise.all(pieces) };
    },
  };
}

/**
 * Checks a file's bytes against its manifest entry: size, then every piece's SHA-256.
 * Returns the number of pieces checked; throws a PackageError naming the file and the piece.
 */
export async function verifyFile(bytes: Uint8Array, entry: PackageFile, pieceSize: number, source: string): Promise<number> {
  if (bytes.byteLength !== entry.size) throw new PackageError(`size ${bytes.byteLength} does not match the manifest (${entry.size})`, { source });
  for (let i = 0; i < entry.pieces.length; i++) {
    const piece = bytes.subarray(i * pieceSize, (i + 1) * pieceSize);
    if ((await sha256Hex(piece)) !== entry.pieces[i]) throw new PackageError(`piece ${i} fails its SHA-256 check`, { source });
  }
  return entry.pieces.length;
}

/** Checks a manifest read from disk or the network before anything trusts it. */
export async function parseManifest(text: string, source: string): Promise<Manifest> {
  let m: Manifest;
  try {
    m = JSON.parse(text) as Manifest;
  } catch (err) {
    throw new PackageError('manifest is not valid JSON', { source, cause: err });
  }
  if (m === null || typeof m !== 'object' || Array.isArray(m)) throw new PackageError('manifest is not a JSON object', { source });
  if (m.format !== PACKAGE_FORMAT) {
    // Described, never stringified: a format of 100,000 nested arrays overflows JSON.stringify's stack.
    const format = typeof m.format === 'string' ? JSON.stringify((m.format as string).slice(0, 80)) : m.format === undefined ? 'undefined' : `of type ${Array.isArray(m.format) ? 'array' : typeof m.format}`;
    throw new PackageError(`unsupported package format ${format} (expected ${PACKAGE_FORMAT}); compile the checkpoint again`, { source });
  }
  const problem = manifestShapeProblem(m);
  if (problem) throw new PackageError(`manifest is malformed: ${problem}`, { source });
  let id: string;
  try {
    id = await manifestId(m);
  } catch (err) {
    // Unknown fields pass the shape check; one nested 100,000 deep overflows the canonical JSON's stack.
    throw new PackageError(`manifest cannot be hashed: ${(err as Error).message}`, { source, cause: err });
  }
  if (id !== m.id) throw new PackageError(`manifest id ${m.id} does not match its content (${id})`, { source });
  return m;
}

export function blockShards(m: Manifest): Extract<Shard, { kind: 'block' }>[] {
  return m.shards.filter((s): s is Extract<Shard, { kind: 'block' }> => s.kind === 'block').sort((a, b) => a.layer - b.layer);
}

export function shardOf<K extends Shard['kind']>(m: Manifest, kind: K): Extract<Shard, { kind: K }> {
  const s = m.shards.find((x) => x.kind === kind);
  if (!s) throw new PackageError(`package has no ${kind} shard`, { source: m.name });
  return s as Extract<Shard, { kind: K }>;
}
