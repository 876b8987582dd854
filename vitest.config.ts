import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['{shared,cli,worker,web,signaling-server,bench}/**/*.test.ts'],
    // Compiling packages and opening ORT sessions is CPU-heavy; on 2 cores a few files at a time is fastest.
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 300_000,
  },
});
