/**
 * The e2e project's global setup (vitest.config.ts): builds the product app (dist/web) and the
 * test pages (dist/test-web) once per test run, before any e2e file starts.
 */
import { buildWebApp } from '../signaling-server/local-grid/web-app.ts';
import { TEST_PAGES_CONFIG } from './pages/paths.ts';

export default async function buildAppAndTestPages(): Promise<void> {
  await buildWebApp();
  await buildWebApp(TEST_PAGES_CONFIG);
}
