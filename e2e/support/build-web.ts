/**
 * The e2e project's global setup (vitest.config.ts): builds the web app into dist/web once per
 * test run, with vite's JS API and the repository's vite.config.ts, before any e2e file starts.
 */
import { fileURLToPath } from 'node:url';
import { build } from 'vite';

export default async function buildWeb(): Promise<void> {
  const started = performance.now();
  await build({
    configFile: fileURLToPath(new URL('../../vite.config.ts', import.meta.url)),
    logLevel: 'warn',
  });
  console.error(`e2e: built dist/web in ${Math.round(performance.now() - started)} ms`);
}
