/**
 * A PackageSink over a directory: files go to a hidden sibling temp folder that is renamed
 * onto the target only when the whole package is written, so an error leaves no partial package.
 */
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { FileHandle } from 'node:fs/promises';
import type { PackageSink } from '../../shared/model/package-sink.ts';
import { MANIFEST_FILE } from '../../shared/model/manifest.ts';
import { UsageError } from '../../shared/errors.ts';

export async function createDirectorySink(outDir: string): Promise<PackageSink> {
  const target = resolve(outDir);
  const existing = await stat(target).catch(() => null);
  if (existing) {
    const isPackage = await stat(join(target, MANIFEST_FILE)).catch(() => null);
    if (!existing.isDirectory() || !isPackage) {
      throw new UsageError('output path exists and is not a model package; choose another --out', { source: outDir });
    }
  }
  await mkdir(dirname(target), { recursive: true });
  const temp = join(dirname(target), `.${basename(target)}.partial-${process.pid}-${Date.now()}`);
  await mkdir(temp);
  const open_: FileHandle[] = [];
  return {
    async create(path) {
      const handle = await open(join(temp, path), 'w');
      open_.push(handle);
      return {
        async write(bytes) {
          let at = 0;
          while (at < bytes.byteLength) at += (await handle.write(bytes, at, bytes.byteLength - at)).bytesWritten;
        },
        close: () => handle.close(),
      };
    },
    async commit() {
      // Move the old package aside before the new one goes in, so a failure at any point
      // leaves either package whole at `target`, never neither.
      const old = existing ? `${temp}.old` : null;
      if (old) await rename(target, old);
      try {
        await rename(temp, target);
      } catch (err) {
        if (old) await rename(old, target);
        throw err;
      }
      if (old) await rm(old, { recursive: true, force: true });
    },
    async abort() {
      await Promise.allSettled(open_.map((h) => h.close()));
      await rm(temp, { recursive: true, force: true });
    },
  };
}
