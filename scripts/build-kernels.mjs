#!/usr/bin/env node
/**
 * Assembles the engine's WebAssembly kernels (*.wat beside their TypeScript) into modules the
 * code imports: `<name>.wasm.generated.ts`, the binary as base64, so browsers, workers, Node and
 * Vite load it alike without a loader. Runs on `npm install` (postinstall); the outputs are
 * not committed (.gitignore), the .wat is the source.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import wabtModule from 'wabt';

const KERNELS = ['shared/runtime/quantized/q-gemv.wat'];
const root = fileURLToPath(new URL('..', import.meta.url));
const wabt = await wabtModule();

for (const path of KERNELS) {
  const source = readFileSync(root + path, 'utf8');
  const module = wabt.parseWat(path, source, { simd: true });
  module.validate();
  const { buffer } = module.toBinary({});
  module.destroy();
  const out = path.replace(/\.wat$/, '.wasm.generated.ts');
  writeFileSync(root + out, [
    `// Generated from ${path.split('/').pop()} by scripts/build-kernels.mjs on npm install; do not edit.`,
    `export const WASM_BASE64 = '${Buffer.from(buffer).toString('base64')}';`,
    '',
  ].join('\n'));
  console.log(`kernels: ${path} -> ${out} (${buffer.byteLength} bytes)`);
}
