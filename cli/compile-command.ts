/** `infermesh compile <checkpoint> --out <dir> [--dtype q4|q8|f32]`: checkpoint -> model package. */
import { UsageError } from '../shared/errors.ts';
import { compilePackage } from '../shared/model/compiler.ts';
import { WEIGHT_DTYPES } from '../shared/model/graphs/linear.ts';
import type { WeightDtype } from '../shared/model/graphs/linear.ts';
import type { Manifest } from '../shared/model/manifest.ts';
import { openCheckpoint } from './open-checkpoint.ts';
import { createDirectorySink } from '../worker/node/package-dir.ts';
import { createCompileProgressBar } from './progress.ts';
import { isCurrentPackage } from '../worker/node/package-files.ts';

export interface CompileCommandOptions {
  out: string;
  dtype: string;
  tokenizer?: string;
  seed: number;
  name?: string;
  quiet?: boolean;
}

export function parseDtype(value: string): WeightDtype {
  if (!(WEIGHT_DTYPES as readonly string[]).includes(value)) throw new UsageError(`unknown dtype ${JSON.stringify(value)} (use ${WEIGHT_DTYPES.join(', ')})`);
  return value as WeightDtype;
}

/**
 * A synthetic package kept in a cache folder: compiled on first use, and again whenever the
 * cached one is not a package this version can run (e.g. after a package format change).
 */
export async function ensureSyntheticPackage(dir: string, model: { preset: string; dtype: WeightDtype; seed: number }, options: { quiet?: boolean } = {}): Promise<string> {
  if (await isCurrentPackage(dir)) return dir;
  process.stderr.write(`compiling synthetic:${model.preset} (${model.dtype}, seed ${model.seed}) into ${dir}\n`);
  await compileCommand(`synthetic:${model.preset}`, { out: dir, dtype: model.dtype, seed: model.seed, quiet: options.quiet });
  return dir;
}

export async function compileCommand(spec: string, options: CompileCommandOptions): Promise<Manifest> {
  const dtype = parseDtype(options.dtype);
  const checkpoint = await openCheckpoint(spec, { tokenizer: options.tokenizer, seed: options.seed });
  const bar = options.quiet ? null : createCompileProgressBar(`compile ${dtype}`);
  const started = performance.now();
  try {
    const sink = await createDirectorySink(options.out);
    const manifest = await compilePackage(checkpoint, { dtype, name: options.name }, { sink, onProgress: (p) => bar?.update(p) });
    bar?.stop();
    if (!options.quiet) {
      const bytes = manifest.files.reduce((a, f) => a + f.size, 0);
      process.stderr.write(
        `compiled ${checkpoint.source} (${dtype}) -> ${options.out}: ${manifest.config.nLayers} blocks, ` +
          `${(bytes / 2 ** 20).toFixed(1)} MiB, ${((performance.now() - started) / 1000).toFixed(1)} s, id ${manifest.id.slice(0, 16)}\n`,
      );
    }
    return manifest;
  } finally {
    bar?.stop();
    await checkpoint.close?.();
  }
}
