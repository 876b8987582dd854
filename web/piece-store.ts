/**
 * The browser's PieceStore: verified pieces in IndexedDB (via idb), so a tab that reloads
 * resumes its download instead of starting over, and keeps serving peers what it holds.
 * One object store, keyed by [packageId, pieceKey], values the piece bytes. Used by the donor
 * page and the browser SDK; exercised by the browser e2e tests (IndexedDB does not exist in Node).
 */
import { openDB } from 'idb';
import type { DBSchema, IDBPDatabase } from 'idb';
import type { PieceKey } from '../shared/swarm/piece-plan.ts';
import { StorageQuotaError } from '../shared/swarm/piece-store.ts';
import type { PieceStore } from '../shared/swarm/piece-store.ts';

const STORE = 'pieces';

interface PieceDb extends DBSchema {
  [STORE]: { key: [string, PieceKey]; value: Uint8Array };
}

export interface IndexedDbPieceStoreOptions {
  /** database name (default 'infermesh-pieces'); tests use their own */
  name?: string;
}

export interface IndexedDbPieceStore extends PieceStore {
  close(): void;
}

export async function createIndexedDbPieceStore(options: IndexedDbPieceStoreOptions = {}): Promise<IndexedDbPieceStore> {
  const db: IDBPDatabase<PieceDb> = await openDB<PieceDb>(options.name ?? 'infermesh-pieces', 1, {
    upgrade(database) {
      database.createObjectStore(STORE);
    },
  });
  return {
    async keys(packageId) {
      // Every [packageId, <string>] key: [packageId] sorts before them, [packageId, []] after
      // (in IndexedDB's key order a shorter array is less, and arrays sort after strings).
      const range = IDBKeyRange.bound([packageId], [packageId, []]);
      return new Set((await db.getAllKeys(STORE, range)).map(([, key]) => key));
    },
    async get(packageId, key) {
      return db.get(STORE, [packageId, key]);
    },
    async put(packageId, key, bytes) {
      // Structured clone copies a view's whole buffer: store exactly the piece's bytes.
      const exact = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
      try {
        await db.put(STORE, exact, [packageId, key]);
      } catch (err) {
        if ((err as Error)?.name === 'QuotaExceededError') {
          throw new StorageQuotaError(
            `the browser's storage quota is full: could not store piece ${key} (${bytes.byteLength} bytes); free space for this site (or in the browser) and reload to resume`,
            { source: packageId, cause: err },
          );
        }
        throw err;
      }
    },
    close() {
      db.close();
    },
  };
}
