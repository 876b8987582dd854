/**
 * `infermesh generate`: runs a package locally with onnxruntime-node, its blocks split into
 * K in-process stages that pass binary hidden-state frames as grid nodes will; or, with
 * `--url`, through a running grid with the SDK (packages/sdk), as an app would. Only the
 * completion goes to stdout; status goes to stderr.
 */
import { connect } from '../packages/sdk/src/node.ts';
import type { GeneratedToken } from '../shared/runtime/pipeline.ts';
import { ensureSyntheticPackage } from './compile-command.ts';
import { DEFAULT_MODEL, syntheticPackageDir } from './defaults.ts';
import { openLocalPipeline } from '../worker/node/local-package.ts';

export interface GenerateCommandOptions {
  model?: string;
  prompt: string;
  maxTokens: number;
  temperature: number;
  topP: number;
  seed: number;
  stages: number;
  threads?: number;
  verify?: boolean;
  /** a grid server's URL: generate through its grid (`model` is then one of its package ids) */
  url?: string;
}

export async function generateCommand(options: GenerateCommandOptions): Promise<void> {
  if (options.url) return generateOnGrid(options.url, options);
  const { preset, dtype, seed } = DEFAULT_MODEL;
  const dir = options.model ?? (await ensureSyntheticPackage(syntheticPackageDir(preset, dtype, seed), DEFAULT_MODEL));
  const { manifest, pipeline, release } = await openLocalPipeline(dir, { stages: options.stages, threads: options.threads, verifyPieces: options.verify });
  process.stderr.write(`model ${manifest.name} (${manifest.dtype}, ${manifest.config.nLayers} layers) in ${options.stages} stage(s)\n`);
  if (manifest.source.startsWith('synthetic:')) {
    process.stderr.write('(synthetic model: random weights, so the text is noise; the README shows how to compile a real checkpoint)\n');
  }
  try {
    await printTokens(pipeline.generate(options.prompt, options));
  } finally {
    await release();
  }
}

async function generateOnGrid(url: string, options: GenerateCommandOptions): Promise<void> {
  const grid = await connect({ url, model: options.model });
  process.stderr.write(`model ${grid.manifest.name} (${grid.manifest.dtype}, ${grid.manifest.config.nLayers} layers) through the grid at ${url}\n`);
  try {
    await printTokens(grid.generate(options.prompt, options));
  } finally {
    await grid.close();
  }
}

/** The completion to stdout as it comes; its timing to stderr. */
async function printTokens(tokens: AsyncIterable<GeneratedToken>): Promise<void> {
  const started = performance.now();
  let firstTokenAt = 0;
  let count = 0;
  for await (const token of tokens) {
    if (token.id !== null && count++ === 0) firstTokenAt = performance.now();
    process.stdout.write(token.text);
  }
  process.stdout.write('\n');
  const ended = performance.now();
  const decodeMs = count > 1 ? (ended - firstTokenAt) / (count - 1) : 0;
  process.stderr.write(
    `${count} tokens, first after ${(firstTokenAt - started).toFixed(0)} ms, then ${decodeMs.toFixed(1)} ms/token` +
      (decodeMs > 0 ? ` (${(1000 / decodeMs).toFixed(1)} tokens/s)` : '') + '\n',
  );
}
