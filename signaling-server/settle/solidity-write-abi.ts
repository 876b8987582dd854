/**
 * Regenerates abi.ts from Settlement.sol after the contract changes: `node signaling-server/settle/solidity-write-abi.ts`.
 * One entry a line, so a diff shows which function, event or error changed.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { compileSettlement } from './solidity-compile.ts';

export function abiModuleText(abi: readonly unknown[]): string {
  return [
    '/**',
    " * The Settlement contract's ABI as a literal type, so viem infers every function's arguments,",
    ' * results, events and errors. Generated from Settlement.sol by signaling-server/settle/solidity-compile.ts; its test fails',
    ' * when the two drift apart (regenerate with: node signaling-server/settle/solidity-write-abi.ts).',
    ' */',
    'export const settlementAbi = [',
    ...abi.map((entry) => `  ${JSON.stringify(entry)},`),
    '] as const;',
    '',
  ].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(new URL('../../shared/settle/abi.ts', import.meta.url), abiModuleText(compileSettlement().abi));
}
