/**
 * Where a node keeps the verified pieces of the packages it fetched, keyed by package id and
 * piece key. The swarm fetcher puts pieces after checking their SHA-256, the piece server
 * answers peers from it, and shards are assembled from it. Browsers use the IndexedDB store
 * (web/piece-store.ts, survives a reload so a download resumes); Node clients and tests use
 * the in-memory store below.
 */
import { InfermeshError } from '../errors.ts';
import type { PieceKey } from './piece-plan.ts';

export interface PieceStore {
  /** the pieces of a package this store holds */
  keys(packageId: string): Promise<Set<PieceKey>>;
  /** a held piece's bytes (callers must not modify them), or undefined */
  get(packageId: string, key: PieceKey): Promise<Uint8Array | undefined>;
  /** stores a piece (already verified), replacing any earlier bytes under its key */
  put(packageId: string, key: PieceKey, bytes: Uint8Array): Promise<void>;
}

/** The store ran out of space (the browser's quota, or a memory store's byte limit). */
export class StorageQuotaError extends InfermeshError {
  override name = 'StorageQuotaError';
}

export interface MemoryPieceStoreOptions {
  /** refuse puts past this many bytes in all (default: no limit) */
  maxBytes?: number;
}

export function createMemoryPieceStore(options: MemoryPieceStoreOptions = {}): PieceStore {
  const packages = new Map<string, Map<PieceKey, Uint8Array>>();
  let stored = 0;
  return {
    async keys(packageId) {
      return new Set(packages.get(packageId)?.keys());
    },
    async get(packageId, key) {
      return packages.get(packageId)?.get(key);
    },
    async put(packageId, key, bytes) {
      const pieces = packages.get(packageId) ?? new Map<PieceKey, Uint8Array>();
      const after = stored - (pieces.get(key)?.byteLength ?? 0) + bytes.byteLength;
      if (options.maxBytes !== undefined && after > options.maxBytes) {
        throw new StorageQuotaError(`storing piece ${key} (${bytes.byteLength} bytes) would hold ${after} bytes, over the store's limit of ${options.maxBytes}`);
      }
      // A copy: the caller may reuse its buffer, and a view would keep a larger buffer alive.
      pieces.set(key, bytes.slice());
      packages.set(packageId, pieces);
      stored = after;
    },
  };
}
