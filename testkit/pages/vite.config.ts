/**
 * Builds the test kit's pages into dist/test-web, served under /test/ beside the product app
 * (dist/web) by the e2e servers: the engine test page (engine-test/) and the cheating donor tab
 * (faulty-donor/). A build of its own, so the product's dist/web holds no test code.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import { isolationHeaders } from '../../vite.config.ts';
import { TEST_PAGES_PATH, TEST_WEB_DIR } from './paths.ts';

const root = fileURLToPath(new URL('./', import.meta.url));
const pages = ['engine-test', 'faulty-donor'];

export default defineConfig({
  root,
  base: TEST_PAGES_PATH,
  build: {
    outDir: TEST_WEB_DIR,
    emptyOutDir: true,
    target: 'es2023',
    rolldownOptions: {
      input: Object.fromEntries(pages.map((page) => [page, `${root}${page}/index.html`])),
    },
  },
  optimizeDeps: { exclude: ['onnxruntime-web'] },
  worker: { format: 'es' },
  server: { headers: isolationHeaders },
  preview: { headers: isolationHeaders },
});
