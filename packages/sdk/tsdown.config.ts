/**
 * Builds the SDK package (dist/): one ES module per entry, browser.js and node.js, with the
 * shared/ code they reach bundled in and every npm dependency left to the app's install, and
 * their type declarations bundled the same way. `npm run sdk:build` at the repository's root.
 */
import { defineConfig } from 'tsdown';

export default defineConfig({
  entry: { browser: 'src/browser.ts', node: 'src/node.ts' },
  format: 'esm',
  platform: 'neutral',
  target: 'es2023',
  outDir: 'dist',
  clean: true,
  dts: { tsconfig: '../../tsconfig.json' },
  // The app installs these: listed in package.json (onnxruntime-node as an optional peer).
  deps: { neverBundle: [/^[^./]/] },
});
