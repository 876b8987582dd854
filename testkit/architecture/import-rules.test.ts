import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { forbiddenImports, readSources } from './import-rules.ts';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

describe('the import rules of ARCHITECTURE.md', () => {
  it('hold for every source file in the repository', async () => {
    const files = await readSources(REPO_ROOT);
    expect(files.size).toBeGreaterThan(300);
    expect(forbiddenImports(files)).toEqual([]);
  });

  it.each([
    ['shared/model/x.ts', "import { tempDir } from '../../testkit/model-fixtures.ts';", 'shared/ may import shared; not testkit/'],
    ['shared/model/x.ts', "import { readFile } from 'node:fs/promises';", 'shared/ is isomorphic: no Node-only modules'],
    ['shared/grid/x.ts', "export type { App } from '../../packages/sdk/src/browser.ts';", 'shared/ may import shared; not packages/'],
    ['worker/x.ts', "const m = await import('../signaling-server/relay.ts');", 'worker/ may import worker, shared; not signaling-server/'],
    ['web/donor/x.ts', "import type { Trust } from '../../signaling-server/trust/validator.ts';", 'web/ may import web, shared, packages, worker; not signaling-server/'],
    ['signaling-server/x.ts', "import { decoders } from '../bench/local-bench.ts';", 'signaling-server/ may import signaling-server, shared, worker; not bench/'],
    ['cli/x.ts', "import { openApp } from '../testkit/browser-app.ts';", 'cli/ may import cli, shared, packages, worker, web, signaling-server; not testkit/'],
    ['web/x.ts', "new Worker(new URL('../testkit/pages/test-engine.worker.ts', import.meta.url));", 'web/ may import web, shared, packages, worker; not testkit/'],
    ['packages/sdk/src/x.ts', "import { startShardEngine } from '../../../worker/engine.ts';", 'packages/ may import packages, shared; not worker/'],
    ['packages/sdk/src/x.ts', "import { readFile } from 'node:fs/promises';", 'packages/ is isomorphic: no Node-only modules'],
    ['testkit/x.ts', "import '../e2e/grid.test.ts';", 'a test'],
  ])('catch %s importing what it may not (%s)', (file, source, why) => {
    expect(forbiddenImports(new Map([[file, source]]))).toEqual([expect.objectContaining({ file, why })]);
  });

  it('let tests import the test kit, and parts import what they may', () => {
    const files = new Map([
      ['shared/grid/x.test.ts', "import { rejection } from '../../testkit/rejection.ts';"],
      ['signaling-server/x.ts', "import { startShardEngine } from '../worker/engine.ts';\nimport { readFile } from 'node:fs';"],
      ['bench/x.ts', "import { openApp } from '../testkit/browser-app.ts';"],
    ]);
    expect(forbiddenImports(files)).toEqual([]);
  });
});
