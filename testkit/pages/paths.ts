/** Where the test pages are built and served: dist/test-web under /test/, beside the product app (dist/web at /). */
import { fileURLToPath } from 'node:url';

export const TEST_PAGES_PATH = '/test/';
export const TEST_WEB_DIR = fileURLToPath(new URL('../../dist/test-web/', import.meta.url));
export const TEST_PAGES_CONFIG = fileURLToPath(new URL('./vite.config.ts', import.meta.url));

/** A grid server's `staticRoutes` that serve the test pages beside the app. */
export const TEST_PAGE_ROUTES: Record<string, string> = { [TEST_PAGES_PATH]: TEST_WEB_DIR };
/** The cheating donor tab's page, relative to a grid server's URL (`?fault=`: testkit/pages/faulty-donor/main.ts). */
export const FAULTY_DONOR = `${TEST_PAGES_PATH.slice(1)}faulty-donor/`;
/** The churn tests' donor tab, relative to a grid server's URL (`window.linkFaults`: testkit/pages/churn-donor/main.ts). */
export const CHURN_DONOR = `${TEST_PAGES_PATH.slice(1)}churn-donor/`;
