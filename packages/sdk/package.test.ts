/**
 * The SDK package's manifest against its sources: every npm package the entries reach (through
 * shared/) is one of its dependencies (onnxruntime-node: an optional peer), at the version the
 * repository itself runs and tests, and it depends on nothing its code does not import.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { importsOf } from '../../testkit/architecture/import-rules.ts';

const SDK = fileURLToPath(new URL('./', import.meta.url));
const ROOT = resolve(SDK, '../..');
const json = async (path: string) => JSON.parse(await readFile(path, 'utf8'));

/** The npm packages the code reachable from `entries` imports, types included (the declarations name them). */
async function reachedPackages(entries: string[]): Promise<Set<string>> {
  const seen = new Set<string>();
  const packages = new Set<string>();
  const visit = async (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const spec of importsOf(await readFile(file, 'utf8'))) {
      if (spec.startsWith('.')) await visit(join(dirname(file), spec));
      else if (!spec.startsWith('node:')) packages.add(spec.split('/').slice(0, spec.startsWith('@') ? 2 : 1).join('/'));
    }
  };
  for (const entry of entries) await visit(join(SDK, entry));
  return packages;
}

describe('packages/sdk/package.json', () => {
  it("declares exactly the packages its code imports, at the repository's versions", async () => {
    const sdk = await json(join(SDK, 'package.json'));
    const root = await json(join(ROOT, 'package.json'));
    const reached = await reachedPackages(['src/browser.ts', 'src/node.ts']);
    const declared = { ...sdk.dependencies, ...sdk.peerDependencies } as Record<string, string>;
    // onnxruntime-common is imported by none of its files but named by its declarations (onnxruntime-web's types).
    expect(new Set(Object.keys(declared))).toEqual(new Set([...reached, 'onnxruntime-common']));
    for (const [name, version] of Object.entries(declared)) expect(`${name}@${version}`).toBe(`${name}@${root.dependencies[name]}`);
    expect(sdk.peerDependenciesMeta['onnxruntime-node']).toEqual({ optional: true });
  });

  it('exports a browser entry and a Node entry, each with its declarations, and ships only dist/ and its README', async () => {
    const sdk = await json(join(SDK, 'package.json'));
    expect(sdk.exports['.'].browser).toEqual({ types: './dist/browser.d.ts', default: './dist/browser.js' });
    expect(sdk.exports['.'].node).toEqual({ types: './dist/node.d.ts', default: './dist/node.js' });
    expect(sdk.files).toEqual(['dist', 'README.md']);
    expect(sdk.engines.node).toBe('>=22');
  });
});
