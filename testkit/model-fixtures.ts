/** Shared set-up for the Node tests: temp folders, compiled packages, paths to ../shared/models. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Checkpoint } from '../shared/model/checkpoint.ts';
import { compilePackage } from '../shared/model/compiler.ts';
import type { WeightDtype } from '../shared/model/graphs/linear.ts';
import type { Manifest } from '../shared/model/manifest.ts';
import { createDirectorySink } from '../worker/node/package-dir.ts';

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
/** The read-only models folder handed to the project, beside the checkout. */
export const SHARED_MODELS = join(REPO_ROOT, '..', 'shared', 'models');
export const STORIES_260K = join(SHARED_MODELS, 'stories260K.bin');
export const TOK_512 = join(SHARED_MODELS, 'tok512.bin');

const made: string[] = [];
const opened: Checkpoint[] = [];

/** Closes a checkpoint's files when the test file cleans up (removeTempDirs); returns it. */
export function track<T extends Checkpoint>(checkpoint: T): T {
  opened.push(checkpoint);
  return checkpoint;
}

export async function tempDir(prefix = 'infermesh-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/** Removes the test's temp folders and closes the checkpoints it compiled or tracked. */
export async function removeTempDirs(): Promise<void> {
  await Promise.all(opened.splice(0).map((c) => c.close?.()));
  await Promise.all(made.splice(0).map((d) => rm(d, { recursive: true, force: true })));
}

export async function compileTo(checkpoint: Checkpoint, dtype: WeightDtype): Promise<{ dir: string; manifest: Manifest }> {
  const dir = join(await tempDir(), 'pkg');
  const manifest = await compilePackage(track(checkpoint), { dtype }, { sink: await createDirectorySink(dir) });
  return { dir, manifest };
}

/** A package folder as the bytes a shard engine can be handed (ShardSource 'bytes'). */
export async function packageBytes(dir: string): Promise<{ kind: 'bytes'; manifest: string; files: Record<string, Uint8Array> }> {
  const { readFile } = await import('node:fs/promises');
  const manifest = await readFile(join(dir, 'manifest.json'), 'utf8');
  const files: Record<string, Uint8Array> = {};
  for (const f of (JSON.parse(manifest) as Manifest).files) files[f.path] = new Uint8Array(await readFile(join(dir, f.path)));
  return { kind: 'bytes', manifest, files };
}
