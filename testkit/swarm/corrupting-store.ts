/**
 * A piece store seen through a cheat: every piece read from it has its bits flipped, the rest
 * is the store's. A peer serving from it sends corrupted pieces, to prove that receivers catch
 * them by their SHA-256 (the faulty donor page's `?fault=corrupt-pieces`, the swarm tests).
 */
import type { PieceStore } from '../../shared/swarm/piece-store.ts';

export function corruptingStore(store: PieceStore): PieceStore {
  return {
    keys: (packageId) => store.keys(packageId),
    async get(packageId, key) {
      const bytes = await store.get(packageId, key);
      return bytes?.map((b) => b ^ 0xff);
    },
    put: (packageId, key, bytes) => store.put(packageId, key, bytes),
  };
}
