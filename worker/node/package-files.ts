/**
 * A model package folder on disk: its manifest and its files checked against it. Kept apart
 * from the onnxruntime sessions (local-package.ts) so compiling never loads the runtime.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PackageError } from '../../shared/errors.ts';
import { MANIFEST_FILE, parseManifest, verifyFile } from '../../shared/model/manifest.ts';
import type { Manifest } from '../../shared/model/manifest.ts';

export async function readPackageManifest(dir: string): Promise<Manifest> {
  const path = join(dir, MANIFEST_FILE);
  const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new PackageError(err.code === 'ENOENT' ? 'not a model package (no manifest.json)' : `cannot read manifest: ${err.message}`, { source: dir });
  });
  return parseManifest(text, path);
}

/** True when `dir` holds a package this version can run (cached packages are recompiled otherwise). */
export async function isCurrentPackage(dir: string): Promise<boolean> {
  return readPackageManifest(dir).then(
    () => true,
    () => false,
  );
}

export async function checkPackageFiles(dir: string, manifest: Manifest, verifyPieces: boolean): Promise<void> {
  for (const file of manifest.files) {
    const path = join(dir, file.path);
    const info = await stat(path).catch(() => null);
    if (!info) throw new PackageError('file listed in the manifest is missing', { source: path });
    if (info.size !== file.size) throw new PackageError(`size ${info.size} does not match the manifest (${file.size})`, { source: path });
    if (verifyPieces) await verifyFile(new Uint8Array(await readFile(path)), file, manifest.pieceSize, path);
  }
}
