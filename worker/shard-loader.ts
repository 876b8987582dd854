/**
 * Gathers the files of a layer range from a package, handed in or fetched by URL, and checks
 * them before anything runs: the manifest's id must be its content hash and the model the
 * caller asked for, the range must lie inside the model, and every piece of every file must
 * match its SHA-256. A shard that fails any check is refused with a PackageError naming it.
 */
import { PackageError, UsageError } from '../shared/errors.ts';
import type { LoadRequest } from '../shared/engine/api.ts';
import { blockShards, MANIFEST_FILE, parseManifest } from '../shared/model/manifest.ts';
import { fetchPackageFiles, readVerifiedFile } from '../shared/model/package-fetch.ts';
import type { PackageFileReader } from '../shared/model/package-fetch.ts';
import type { Manifest } from '../shared/model/manifest.ts';
import { decodeModel } from '../shared/model/onnx/schema.ts';
import type { Model } from '../shared/model/onnx/schema.ts';

export interface LoadedShard {
  manifest: Manifest;
  /** block graphs of the range, in layer order */
  blocks: Model[];
  /** external weight files the graphs reference, by the path written in them */
  externalData: { path: string; data: Uint8Array }[];
  piecesVerified: number;
  weightBytes: number;
}

export async function loadShardFiles(request: LoadRequest, deps: { fetch?: typeof fetch } = {}): Promise<LoadedShard> {
  const source = request.source;
  const where = source.kind === 'url' ? source.baseUrl : 'handed-in package';
  const get: PackageFileReader =
    source.kind === 'url'
      ? fetchPackageFiles(source.baseUrl, deps.fetch)
      : async (path) => {
          const bytes = source.files[path];
          if (!bytes) throw new PackageError('file is missing from the bytes handed in', { source: path });
          return bytes;
        };

  const manifestText = source.kind === 'bytes' ? source.manifest : new TextDecoder().decode(await get(MANIFEST_FILE));
  const manifest = await parseManifest(manifestText, `${where}/${MANIFEST_FILE}`);
  if (manifest.id !== request.modelId) {
    throw new PackageError(`shard belongs to model ${manifest.id} (${manifest.name}), not the requested ${request.modelId}`, { source: where });
  }
  const { start, end } = request.layers;
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end <= start || end > manifest.config.nLayers) {
    throw new UsageError(`layer range ${start}..${end} is not inside the model's ${manifest.config.nLayers} layers`);
  }

  let piecesVerified = 0;
  const verified = async (path: string): Promise<Uint8Array> => {
    const { bytes, pieces } = await readVerifiedFile(manifest, path, get);
    piecesVerified += pieces;
    return bytes;
  };

  const blocks: Model[] = [];
  const externalData: LoadedShard['externalData'] = [];
  for (const shard of blockShards(manifest).slice(start, end)) {
    blocks.push(decodeModel(await verified(shard.graph)));
    externalData.push({ path: shard.data, data: await verified(shard.data) });
  }
  const weightBytes = externalData.reduce((sum, f) => sum + f.data.byteLength, 0);
  return { manifest, blocks, externalData, piecesVerified, weightBytes };
}
