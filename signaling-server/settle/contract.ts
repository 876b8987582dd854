/**
 * The Settlement contract as the server deploys it: compiled once into infermesh's cache folder
 * ($INFERMESH_CACHE, else ~/.cache/infermesh; see config.ts), so only the first start pays for
 * loading solc-js.
 */
import { compileSettlement, type CompiledContract } from './solidity-compile.ts';
import { defaultCacheDir } from '../config.ts';

export function settlementArtifact(env: Record<string, string | undefined> = process.env): CompiledContract {
  return compileSettlement({ cacheDir: defaultCacheDir(env) });
}
