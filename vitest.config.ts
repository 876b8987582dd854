import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Compiling packages and opening ORT sessions is CPU-heavy; on 2 cores a few files at a time is fastest.
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 300_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['{shared,packages,cli,worker,web,signaling-server,bench,testkit}/**/*.test.ts'],
          exclude: ['e2e/**', '**/node_modules/**'],
        },
      },
      {
        extends: true,
        test: {
          name: 'e2e',
          include: ['e2e/**/*.test.ts'],
          // The slow suites are the README's second command (`npm run test:slow`): churn, and the SDK package.
          exclude: ['e2e/churn/**', 'e2e/package/**', '**/node_modules/**'],
          // Each file drives a whole Chromium (and later several tabs and a relay): one at a time.
          fileParallelism: false,
          maxWorkers: 1,
          // Runs after the unit project, so browsers do not fight unit tests for the CPU.
          sequence: { groupOrder: 1 },
          testTimeout: 180_000,
          hookTimeout: 300_000,
          globalSetup: ['testkit/web-build.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'churn',
          include: ['e2e/churn/**/*.test.ts'],
          fileParallelism: false,
          maxWorkers: 1,
          testTimeout: 180_000,
          hookTimeout: 300_000,
          globalSetup: ['testkit/web-build.ts'],
        },
      },
      {
        extends: true,
        test: {
          name: 'package',
          include: ['e2e/package/**/*.test.ts'],
          fileParallelism: false,
          maxWorkers: 1,
          testTimeout: 180_000,
          hookTimeout: 300_000,
        },
      },
    ],
  },
});
