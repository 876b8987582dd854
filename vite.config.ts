/**
 * Builds the browser app in web/ (donor page, chat page) into dist/web, one entry per page in
 * `pages`: what `npm install` builds and the server serves. The test pages are another build of
 * the same shape (testkit/pages/vite.config.ts) into dist/test-web, so nothing of the test kit
 * ships here. onnxruntime-web's WASM and worker files are excluded from dependency pre-bundling
 * so they load from their own URLs. Workers are ES modules (`new Worker(new URL(...), { type:
 * 'module' })`), so vite bundles them as ES modules too. Paths are absolute so that vite's JS
 * `build()` (the e2e global setup) works from any working directory.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import type { UserConfig } from 'vite';

/** crossOriginIsolated, so onnxruntime-web gets threaded WASM (SharedArrayBuffer) under `vite` too. */
const isolationHeaders = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
};

export interface PagesBuild {
  /** the folder whose subfolders are the pages */
  root: string;
  /** the pages to build, by their folder under root; each folder holds an index.html */
  pages: string[];
  outDir: string;
  /** the URL path the build is served under (default '/') */
  base?: string;
  /** also build root's own index.html (the page at /) */
  home?: boolean;
}

/** A vite build of some pages, each an index.html in a folder of its own. */
export function pagesConfig({ root, pages, outDir, base, home }: PagesBuild): UserConfig {
  return {
    root,
    base,
    build: {
      outDir,
      emptyOutDir: true,
      target: 'es2023',
      rolldownOptions: {
        input: { ...Object.fromEntries(pages.map((page) => [page, `${root}${page}/index.html`])), ...(home && { home: `${root}index.html` }) },
      },
    },
    optimizeDeps: { exclude: ['onnxruntime-web'] },
    worker: { format: 'es' },
    server: { headers: isolationHeaders },
    preview: { headers: isolationHeaders },
  };
}

export default defineConfig(
  pagesConfig({
    root: fileURLToPath(new URL('./web/', import.meta.url)),
    pages: ['campaign', 'chat', 'donor'],
    home: true,
    outDir: fileURLToPath(new URL('./dist/web/', import.meta.url)),
  }),
);
