/**
 * Compiles Settlement.sol in-process with solc-js (npm `solc`, standard JSON input) into the ABI
 * and creation bytecode that `deploySettlement` sends. Node only: the coordinator, the tests and
 * the CLI use it; browsers never deploy and import only voucher.ts.
 *
 * Loading solc-js costs about a second (a 9 MB emscripten module), so results are memoized in the
 * process and cached on disk under `<cacheDir>/solc/<hash>.json`, keyed by the source, the solc
 * version and the settings: an unchanged contract never loads the compiler again.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Abi, Hex } from 'viem';
import { SolidityCompileError } from '../../shared/settle/errors.ts';

export interface CompiledContract {
  abi: Abi;
  bytecode: Hex;
  /** sha256 of the cache key (source, compiler version, settings) */
  sourceHash: string;
}

export interface CompileSolidityOptions {
  /** the file the source is reported as (and read from when `source` is absent) */
  file: string;
  source?: string;
  contract: string;
  /** where compiled results are kept across processes; none: memoized in this process only */
  cacheDir?: string;
}

export const SETTLEMENT_SOL = fileURLToPath(new URL('../../shared/settle/Settlement.sol', import.meta.url));

const require = createRequire(import.meta.url);

// Cancun is what anvil 1.x and today's mainnets run; pinned so the bytecode does not drift with solc's default.
const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: 'cancun',
  outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
} as const;

const memo = new Map<string, CompiledContract>();

/** Drops the in-process memo (tests use it to prove the disk cache answers alone). */
export function forgetCompiled(): void {
  memo.clear();
}

export function compileSettlement(options: { cacheDir?: string } = {}): CompiledContract {
  return compileSolidity({ file: SETTLEMENT_SOL, contract: 'Settlement', ...options });
}

export function compileSolidity(options: CompileSolidityOptions): CompiledContract {
  const source = options.source ?? readFileSync(options.file, 'utf8');
  const name = basename(options.file);
  const solcVersion = (require('solc/package.json') as { version: string }).version;
  const sourceHash = createHash('sha256')
    .update(JSON.stringify({ solcVersion, SETTINGS, name, contract: options.contract, source }))
    .digest('hex');

  const cached = memo.get(sourceHash) ?? readCache(options.cacheDir, sourceHash);
  if (cached) {
    memo.set(sourceHash, cached);
    return cached;
  }

  const compiled = runSolc(name, options.file, source, options.contract, sourceHash);
  memo.set(sourceHash, compiled);
  writeCache(options.cacheDir, compiled);
  return compiled;
}

interface SolcError {
  severity: 'error' | 'warning' | 'info';
  message: string;
  formattedMessage?: string;
  sourceLocation?: { file: string; start: number; end: number };
}

function runSolc(name: string, file: string, source: string, contract: string, sourceHash: string): CompiledContract {
  const solc = require('solc') as { compile(input: string): string };
  const input = { language: 'Solidity', sources: { [name]: { content: source } }, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input))) as {
    errors?: SolcError[];
    contracts?: Record<string, Record<string, { abi: Abi; evm: { bytecode: { object: string } } }>>;
  };
  const firstError = output.errors?.find((e) => e.severity === 'error');
  if (firstError) {
    const where = firstError.sourceLocation ? lineAndColumn(source, firstError.sourceLocation.start) : undefined;
    throw new SolidityCompileError(firstError.message, { file, ...where }, { details: firstError.formattedMessage });
  }
  const artifact = output.contracts?.[name]?.[contract];
  if (!artifact) throw new SolidityCompileError(`no contract named ${contract}`, { file });
  return { abi: artifact.abi, bytecode: `0x${artifact.evm.bytecode.object}`, sourceHash };
}

function lineAndColumn(source: string, offset: number): { line: number; column: number } {
  // solc reports byte offsets; the contract is ASCII, but count in bytes to stay right if it is not.
  const before = Buffer.from(source, 'utf8').subarray(0, offset).toString('utf8');
  const lines = before.split('\n');
  return { line: lines.length, column: lines[lines.length - 1].length + 1 };
}

function readCache(cacheDir: string | undefined, sourceHash: string): CompiledContract | undefined {
  if (!cacheDir) return undefined;
  try {
    const cached = JSON.parse(readFileSync(join(cacheDir, 'solc', `${sourceHash}.json`), 'utf8')) as CompiledContract;
    return cached.sourceHash === sourceHash ? cached : undefined;
  } catch {
    return undefined; // missing or unreadable: compile again and overwrite
  }
}

function writeCache(cacheDir: string | undefined, compiled: CompiledContract): void {
  if (!cacheDir) return;
  const dir = join(cacheDir, 'solc');
  mkdirSync(dir, { recursive: true });
  // Written aside and renamed, so a concurrent reader never sees half a file.
  const tmp = join(dir, `${compiled.sourceHash}.${process.pid}.tmp`);
  writeFileSync(tmp, JSON.stringify(compiled));
  renameSync(tmp, join(dir, `${compiled.sourceHash}.json`));
}
