/**
 * Builds the browser app in web/ (donor page, chat page) into dist/web, one entry per page in
 * `pages`: what `npm install` builds and the server serves. The test pages are another build
 * (testkit/pages/vite.config.ts) into dist/test-web, so nothing of the test kit ships here. onnxruntime-web's WASM and worker files are excluded from dependency pre-bundling so
 * they load from their own URLs. Workers are ES modules (`new Worker(new URL(...), { type:
 * 'module' })`), so vite bundles them as ES modules too. Paths are absolute so that vite's JS
 * `build()` (the e2e global setup) works from any working directory.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const webRoot = fileURLToPath(new URL('./web/', import.meta.url));

/** Pages to build, by their folder under web/; each folder holds an index.html. */
const pages = ['chat', 'donor'];

/** crossOriginIsolated, so onnxruntime-web gets threaded WASM (SharedArrayBuffer) under `vite` too. */
export const isolationHeaders = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
};

export default defineConfig({
  root: webRoot,
  build: {
    outDir: fileURLToPath(new URL('./dist/web/', import.meta.url)),
    emptyOutDir: true,
    target: 'es2023',
    rolldownOptions: {
      input: Object.fromEntries(pages.map((page) => [page, `${webRoot}${page}/index.html`])),
    },
  },
  optimizeDeps: { exclude: ['onnxruntime-web'] },
  worker: { format: 'es' },
  server: { headers: isolationHeaders },
  preview: { headers: isolationHeaders },
});
