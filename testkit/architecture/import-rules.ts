/**
 * The repository's parts and what each may import (ARCHITECTURE.md), checked over the import
 * graph: every static, dynamic and type import, and every `new URL('…', import.meta.url)` (how
 * workers are started), read with TypeScript's own pre-processor. Tests (`*.test.ts`) may import
 * anything; product code never reaches the test kit, the benches or the e2e tests.
 */
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, normalize, relative } from 'node:path';
import ts from 'typescript';

/** A top-level folder (or `root` for the files beside them). */
export type Part = 'shared' | 'packages' | 'worker' | 'web' | 'signaling-server' | 'cli' | 'bin' | 'testkit' | 'bench' | 'e2e' | 'scripts' | 'root';

/** The parts each part's code (not its tests) may import; its own part is always allowed. */
export const ALLOWED: Record<Part, readonly Part[]> = {
  shared: [],
  // The SDK package (packages/sdk) is built from shared/ alone, so nothing else ships in it.
  packages: ['shared'],
  worker: ['shared'],
  web: ['shared', 'packages', 'worker'],
  'signaling-server': ['shared', 'worker'],
  cli: ['shared', 'packages', 'worker', 'web', 'signaling-server'],
  bin: ['cli'],
  testkit: ['shared', 'packages', 'worker', 'web', 'signaling-server', 'cli', 'bin', 'root'],
  bench: ['shared', 'packages', 'worker', 'web', 'signaling-server', 'cli', 'testkit', 'root'],
  e2e: ['shared', 'packages', 'worker', 'web', 'signaling-server', 'cli', 'testkit', 'bench', 'root'],
  scripts: [],
  root: ['shared', 'packages', 'worker', 'web', 'signaling-server', 'cli', 'testkit'],
};

const PARTS = new Set<string>(Object.keys(ALLOWED));
/** shared/ and the SDK package run in browsers and Node alike: no Node-only modules. */
const ISOMORPHIC: ReadonlySet<Part> = new Set(['shared', 'packages']);

export interface ForbiddenImport {
  file: string;
  imports: string;
  why: string;
}

export function partOf(file: string): Part {
  const top = file.split('/')[0];
  return file.includes('/') && PARTS.has(top) ? (top as Part) : 'root';
}

/** The specifiers a source file imports, by TypeScript's pre-processor, plus worker/asset URLs. */
export function importsOf(text: string): string[] {
  const { importedFiles } = ts.preProcessFile(text, true, true);
  // Only URLs of code (a worker's entry): folders and assets found beside the code are not imports.
  const urls = [...text.matchAll(/new URL\(\s*['"](\.{1,2}\/[^'"]+\.(?:ts|js|mjs))['"]\s*,\s*import\.meta\.url\s*\)/g)].map((m) => m[1]);
  return [...importedFiles.map((f) => f.fileName), ...urls];
}

/** Every import in `files` (repository-relative path -> source text) that its part may not make. */
export function forbiddenImports(files: ReadonlyMap<string, string>): ForbiddenImport[] {
  const found: ForbiddenImport[] = [];
  for (const [file, text] of files) {
    if (file.endsWith('.test.ts')) continue;
    const from = partOf(file);
    for (const spec of importsOf(text)) {
      if (spec.startsWith('node:') && ISOMORPHIC.has(from)) {
        found.push({ file, imports: spec, why: `${from}/ is isomorphic: no Node-only modules` });
        continue;
      }
      if (!spec.startsWith('.')) continue;
      const target = normalize(join(dirname(file), spec.split('?')[0]));
      if (target.startsWith('..')) {
        found.push({ file, imports: spec, why: 'outside the repository' });
        continue;
      }
      const to = partOf(target);
      if (to === from || ALLOWED[from].includes(to)) continue;
      if (target.endsWith('.test.ts')) found.push({ file, imports: spec, why: 'a test' });
      else found.push({ file, imports: spec, why: `${from}/ may import ${[from, ...ALLOWED[from]].join(', ')}; not ${to === 'root' ? target : `${to}/`}` });
    }
  }
  return found;
}

const SOURCE = /\.(ts|mts|js|mjs)$/;
const SKIP = new Set(['node_modules', 'dist', '.git', '.infermesh']);

/** The repository's source files, read from `root`. */
export async function readSources(root: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  for (const entry of entries) {
    if (!entry.isFile() || !SOURCE.test(entry.name)) continue;
    const path = relative(root, join(entry.parentPath, entry.name));
    if (path.split('/').some((segment) => SKIP.has(segment))) continue;
    files.set(path, await readFile(join(root, path), 'utf8'));
  }
  return files;
}
