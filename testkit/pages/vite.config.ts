/**
 * Builds the test kit's pages into dist/test-web, served under /test/ beside the product app
 * (dist/web) by the e2e servers: the engine test page (engine-test/) and the cheating donor tab
 * (faulty-donor/), the churn tests' donor tab (churn-donor/). A build of its own, so the product's dist/web holds no test code.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import { pagesConfig } from '../../vite.config.ts';
import { TEST_PAGES_PATH, TEST_WEB_DIR } from './paths.ts';

export default defineConfig(
  pagesConfig({
    root: fileURLToPath(new URL('./', import.meta.url)),
    pages: ['engine-test', 'faulty-donor', 'churn-donor'],
    outDir: TEST_WEB_DIR,
    base: TEST_PAGES_PATH,
  }),
);
