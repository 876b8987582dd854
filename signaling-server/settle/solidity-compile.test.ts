import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { settlementAbi } from '../../shared/settle/abi.ts';
import { compileSettlement, compileSolidity, forgetCompiled, SETTLEMENT_SOL } from './solidity-compile.ts';
import { SolidityCompileError } from '../../shared/settle/errors.ts';
import { abiModuleText } from './solidity-write-abi.ts';

const cacheDir = mkdtempSync(join(tmpdir(), 'infermesh-solc-'));
afterAll(() => rmSync(cacheDir, { recursive: true, force: true }));

describe('compileSettlement', () => {
  it('produces creation bytecode and the ABI that abi.ts declares', () => {
    const compiled = compileSettlement({ cacheDir });
    expect(compiled.bytecode).toMatch(/^0x[0-9a-f]{2000,}$/);
    expect(compiled.abi).toEqual(settlementAbi);
    // abi.ts is generated text: regenerating it must change nothing.
    expect(readFileSync(new URL('../../shared/settle/abi.ts', import.meta.url), 'utf8')).toBe(abiModuleText(compiled.abi));
  });

  it('answers from the disk cache without solc once compiled', () => {
    const first = compileSettlement({ cacheDir });
    const file = join(cacheDir, 'solc', `${first.sourceHash}.json`);
    expect(readdirSync(join(cacheDir, 'solc'))).toEqual([`${first.sourceHash}.json`]);
    // Tamper with the cached bytecode: if the next call reads it, the disk cache was used.
    writeFileSync(file, JSON.stringify({ ...first, bytecode: '0x00' }));
    forgetCompiled();
    const started = performance.now();
    expect(compileSettlement({ cacheDir }).bytecode).toBe('0x00');
    expect(performance.now() - started).toBeLessThan(200);
    writeFileSync(file, JSON.stringify(first));
    forgetCompiled();
  });

  it('reports a compile error with the file and line', () => {
    const source = 'pragma solidity ^0.8.24;\ncontract Broken {\n  function f() public { uint x = ; }\n}\n';
    let err: unknown;
    try {
      compileSolidity({ file: '/src/Broken.sol', source, contract: 'Broken' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SolidityCompileError);
    const e = err as SolidityCompileError;
    expect(e.name).toBe('SolidityCompileError');
    expect([e.file, e.line]).toEqual(['/src/Broken.sol', 3]);
    expect(e.message).toMatch(/^\/src\/Broken\.sol:3:\d+: Expected/);
  });

  it('finds the contract next to this module', () => {
    expect(SETTLEMENT_SOL).toMatch(/shared\/settle\/Settlement\.sol$/);
  });
});
