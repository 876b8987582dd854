/**
 * The folders a fuzzed server runs in: a temp folder holding the model package (stories260K
 * f32, compiled in 0.1 s), the server's data folder, and beside them a folder the server must
 * never serve, with a canary file of random content. A response that carries the canary read
 * a file outside the served folders. Used by the fuzz runner's callers (the fuzz test, the
 * fuzz bench).
 *
 *   <root>/pkg/                  served at /packages/<manifest id>/
 *   <root>/data/                 --data (sqlite stores, anvil's state)
 *   <root>/outside/canary.txt    served nowhere
 */
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { openCheckpoint } from '../../cli/open-checkpoint.ts';
import { compileTo, removeTempDirs, STORIES_260K, TOK_512 } from '../model-fixtures.ts';
import type { Manifest } from '../../shared/model/manifest.ts';

export interface GridSandbox {
  root: string;
  modelDir: string;
  dataDir: string;
  manifest: Manifest;
  /** the canary file's path and content: content no served file has */
  canaryPath: string;
  canary: string;
  /** Removes every folder above (stop the server first). */
  remove(): Promise<void>;
}

export async function prepareGridSandbox(): Promise<GridSandbox> {
  const { dir: modelDir, manifest } = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'f32');
  const root = dirname(modelDir);
  const dataDir = join(root, 'data');
  const canaryPath = join(root, 'outside', 'canary.txt');
  const canary = `infermesh-fuzz-canary-${randomBytes(16).toString('hex')}`;
  await mkdir(dataDir, { recursive: true });
  await mkdir(dirname(canaryPath), { recursive: true });
  await writeFile(canaryPath, `${canary}\n`);
  return { root, modelDir, dataDir, manifest, canaryPath, canary, remove: removeTempDirs };
}
