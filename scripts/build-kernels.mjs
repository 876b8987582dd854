#!/usr/bin/env node
/**
 * Assembles the engine's WebAssembly kernels (*.wat beside their TypeScript) into modules the
 * code imports: `<name>.wasm.generated.ts`, the binary as base64, so browsers, workers, Node and
 * Vite load it alike without a loader. Runs on `npm install` (postinstall); the outputs are
 * not committed (.gitignore), the .wat is the source.
 *
 * Each kernel is assembled twice: as written, with a memory of its own (WASM_BASE64), and with
 * that memory imported and shared (WASM_SHARED_BASE64), for threads that split one product's
 * rows among them (quantized-gemv.ts); a page that is not cross-origin isolated has no shared
 * memory, and runs the first.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import wabtModule from 'wabt';

const KERNELS = ['shared/runtime/quantized/q-gemv.wat'];
/** The memory line each kernel declares, and what it becomes in the shared build (65536 pages: 4 GiB, wasm32's most). */
const OWN_MEMORY = '(memory (export "memory") 1)';
const SHARED_MEMORY = '(import "env" "memory" (memory 1 65536 shared))';
const root = fileURLToPath(new URL('..', import.meta.url));
const wabt = await wabtModule();

function assemble(path, source) {
  const features = { simd: true, threads: true };
  const module = wabt.parseWat(path, source, features);
  module.validate(features);
  const { buffer } = module.toBinary({});
  module.destroy();
  return Buffer.from(buffer);
}

for (const path of KERNELS) {
  const source = readFileSync(root + path, 'utf8');
  if (!source.includes(OWN_MEMORY)) throw new Error(`${path} must declare its memory as ${OWN_MEMORY}`);
  const own = assemble(path, source);
  const shared = assemble(path, source.replace(OWN_MEMORY, SHARED_MEMORY));
  const out = path.replace(/\.wat$/, '.wasm.generated.ts');
  writeFileSync(root + out, [
    `// Generated from ${path.split('/').pop()} by scripts/build-kernels.mjs on npm install; do not edit.`,
    `export const WASM_BASE64 = '${own.toString('base64')}';`,
    `export const WASM_SHARED_BASE64 = '${shared.toString('base64')}';`,
    '',
  ].join('\n'));
  console.log(`kernels: ${path} -> ${out} (${own.byteLength} bytes, ${shared.byteLength} shared)`);
}
