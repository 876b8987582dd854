/**
 * Opens a Hugging Face Llama-family checkpoint directory (config.json, safetensors weights,
 * single or sharded, tokenizer.json) as a Checkpoint. Everything that can be checked without
 * reading weights is checked at open: architecture, every expected tensor's presence, shape and
 * dtype, so a broken checkpoint fails in a second instead of halfway through a compile.
 */
import { CheckpointFormatError, ModelConfigError, TokenizerError } from '../../errors.ts';
import type { ByteSource, FileOpener } from '../byte-source.ts';
import { expectedTensors, LM_HEAD_TENSOR, type Checkpoint, type TensorInfo, type TokenizerSource } from '../checkpoint.ts';
import type { ModelConfig } from '../config.ts';
import { parseHuggingFaceConfig } from './hf-config.ts';
import { isReadableDtype, parseSafetensorsHeader, readSafetensorsTensor, type SafetensorsEntry } from './safetensors.ts';
import { canonicalToHf, hfToCanonical, isUnsupportedHfTensor } from './tensor-names.ts';

export const HF_CONFIG_FILE = 'config.json';
export const HF_WEIGHTS_FILE = 'model.safetensors';
export const HF_INDEX_FILE = 'model.safetensors.index.json';
export const HF_TOKENIZER_FILE = 'tokenizer.json';
export const HF_TOKENIZER_CONFIG_FILE = 'tokenizer_config.json';

interface Located {
  hfName: string;
  source: ByteSource;
  entry: SafetensorsEntry;
}

export async function openHuggingFaceCheckpoint(dir: string, opener: FileOpener): Promise<Checkpoint> {
  const configPath = opener.join(dir, HF_CONFIG_FILE);
  const configJson = await readJsonFile(opener, configPath, (msg, source) => new ModelConfigError(msg, { source }));
  if (configJson === null) {
    throw new ModelConfigError(`missing model config: expected ${HF_CONFIG_FILE} in ${dir}`, { source: dir });
  }
  const config = parseHuggingFaceConfig(configJson, configPath);
  const tokenizer = await readTokenizerSource(dir, opener);

  const shards: ByteSource[] = [];
  try {
    const byHfName = await openWeights(dir, opener, shards);
    const canonical = locateCanonical(config, byHfName, dir, configPath);
    const infos = expectedTensors(config);
    return {
      source: dir,
      config,
      tokenizer,
      tensors: () => infos.map((t) => ({ name: t.name, shape: [...t.shape] })),
      async read(name) {
        const loc = canonical.get(name);
        if (!loc) throw new CheckpointFormatError(`no tensor named ${name} in this checkpoint`, { source: dir });
        return readSafetensorsTensor(loc.source, loc.entry);
      },
      close: () => closeAll(shards),
    };
  } catch (err) {
    await closeAll(shards);
    throw err;
  }
}

/** Opens the shard files and returns every tensor they hold by HF name; pushes opened sources to `opened`. */
async function openWeights(dir: string, opener: FileOpener, opened: ByteSource[]): Promise<Map<string, Located>> {
  const indexPath = opener.join(dir, HF_INDEX_FILE);
  const fmtError = (msg: string, source: string) => new CheckpointFormatError(msg, { source });
  const index = await readJsonFile(opener, indexPath, fmtError);
  const byHfName = new Map<string, Located>();

  const openShard = async (file: string, listedIn?: string) => {
    const path = opener.join(dir, file);
    const source = await opener.open(path);
    if (!source) {
      throw listedIn
        ? new CheckpointFormatError(`shard ${file} listed in ${HF_INDEX_FILE} is missing from ${dir}`, { source: listedIn })
        : new CheckpointFormatError(`missing weights: expected ${HF_WEIGHTS_FILE} or ${HF_INDEX_FILE} in ${dir}`, { source: dir });
    }
    opened.push(source);
    return { source, header: await parseSafetensorsHeader(source) };
  };

  if (index === null) {
    const weights = await opener.open(opener.join(dir, HF_WEIGHTS_FILE));
    if (!weights) {
      const hasBin = await exists(opener, opener.join(dir, 'pytorch_model.bin'), opener.join(dir, 'pytorch_model.bin.index.json'));
      throw new CheckpointFormatError(
        hasBin
          ? `only safetensors weights are supported: ${dir} has pytorch_model.bin but no ${HF_WEIGHTS_FILE}`
          : `missing weights: expected ${HF_WEIGHTS_FILE} or ${HF_INDEX_FILE} in ${dir}`,
        { source: dir },
      );
    }
    opened.push(weights);
    const header = await parseSafetensorsHeader(weights);
    for (const [name, entry] of header.tensors) byHfName.set(name, { hfName: name, source: weights, entry });
    return byHfName;
  }

  const weightMap = (index as Record<string, unknown>).weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new CheckpointFormatError(`${HF_INDEX_FILE} has no weight_map object`, { source: indexPath });
  }
  const files = new Set<string>();
  for (const [name, file] of Object.entries(weightMap)) {
    // A shard must be a sibling file: a weight map must not point the reader elsewhere on disk.
    if (typeof file !== 'string' || file === '' || /(^|[\\/])\.\.([\\/]|$)/.test(file) || /^([\\/]|[A-Za-z]:)/.test(file)) {
      throw new CheckpointFormatError(`weight_map entry for ${name} has an invalid shard name ${JSON.stringify(file)}`, { source: indexPath });
    }
    files.add(file);
  }
  const shardsByFile = new Map<string, Awaited<ReturnType<typeof openShard>>>();
  for (const file of files) shardsByFile.set(file, await openShard(file, indexPath));
  for (const [name, file] of Object.entries(weightMap as Record<string, string>)) {
    const shard = shardsByFile.get(file)!;
    const entry = shard.header.tensors.get(name);
    if (!entry) {
      throw new CheckpointFormatError(`tensor ${name} is listed in ${HF_INDEX_FILE} but not present in this shard`, { source: shard.source.name });
    }
    byHfName.set(name, { hfName: name, source: shard.source, entry });
  }
  return byHfName;
}

/** Maps the checkpoint's tensors to canonical names and checks them against the config. */
function locateCanonical(
  config: ModelConfig,
  byHfName: Map<string, Located>,
  dir: string,
  configPath: string,
): Map<string, Located> {
  const canonical = new Map<string, Located>();
  for (const [hfName, loc] of byHfName) {
    if (isUnsupportedHfTensor(hfName)) {
      throw new CheckpointFormatError(`tensor ${hfName} is a bias infermesh does not support (only q/k/v projections may have bias)`, { source: loc.source.name });
    }
    const name = hfToCanonical(hfName);
    if (name === null) continue; // rotary_emb.inv_freq and other buffers the math does not need
    if (!config.qkvBias && /\.b[qkv]$/.test(name)) {
      throw new CheckpointFormatError(`tensor ${hfName} is a q/k/v bias but ${configPath} says the model has none`, { source: loc.source.name });
    }
    canonical.set(name, loc);
  }
  for (const want of expectedTensors(config)) {
    const loc = canonical.get(want.name);
    if (!loc) {
      if (want.name === LM_HEAD_TENSOR) {
        throw new CheckpointFormatError(`missing tensor lm_head.weight, and tie_word_embeddings is not true in ${configPath}`, { source: dir });
      }
      throw new CheckpointFormatError(`missing tensor ${canonicalToHf(want.name)} (expected shape ${fmtShape(want)})`, { source: dir });
    }
    if (!sameShape(loc.entry.shape, want.shape)) {
      throw new CheckpointFormatError(
        `tensor ${loc.hfName} has shape [${loc.entry.shape.join(', ')}] but ${configPath} implies ${fmtShape(want)}`,
        { source: loc.source.name },
      );
    }
    if (!isReadableDtype(loc.entry.dtype)) {
      throw new CheckpointFormatError(`tensor ${loc.hfName} has dtype ${loc.entry.dtype}; infermesh reads only F32, F16 and BF16 weights`, { source: loc.source.name });
    }
  }
  return canonical;
}

async function readTokenizerSource(dir: string, opener: FileOpener): Promise<TokenizerSource> {
  const path = opener.join(dir, HF_TOKENIZER_FILE);
  const tokenizerJson = await readFileBytes(opener, path);
  if (!tokenizerJson) throw new TokenizerError(`missing tokenizer: expected ${HF_TOKENIZER_FILE} in ${dir}`, { source: dir });
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(tokenizerJson));
  } catch (err) {
    throw new TokenizerError(`${HF_TOKENIZER_FILE} is not valid JSON (${(err as Error).message})`, { source: path });
  }
  if (typeof parsed !== 'object' || parsed === null || !('model' in parsed)) {
    throw new TokenizerError(`${HF_TOKENIZER_FILE} has no "model" section; is it a Hugging Face tokenizers file?`, { source: path });
  }
  const tokenizerConfigJson = await readFileBytes(opener, opener.join(dir, HF_TOKENIZER_CONFIG_FILE));
  return tokenizerConfigJson ? { kind: 'huggingface', tokenizerJson, tokenizerConfigJson } : { kind: 'huggingface', tokenizerJson };
}

async function readFileBytes(opener: FileOpener, path: string): Promise<Uint8Array | null> {
  const source = await opener.open(path);
  if (!source) return null;
  try {
    return await source.read(0, source.size);
  } finally {
    await source.close?.();
  }
}

/** Reads and parses a JSON file; null if absent; `error` builds the error for bad JSON. */
async function readJsonFile(
  opener: FileOpener,
  path: string,
  error: (msg: string, source: string) => Error,
): Promise<unknown> {
  const bytes = await readFileBytes(opener, path);
  if (!bytes) return null;
  const name = path.slice(Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\')) + 1);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw error(`${name} is not valid JSON (${(err as Error).message})`, path);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw error(`${name} is not a JSON object`, path);
  return json;
}

async function exists(opener: FileOpener, ...paths: string[]): Promise<boolean> {
  for (const p of paths) {
    const s = await opener.open(p);
    if (s) {
      await s.close?.();
      return true;
    }
  }
  return false;
}

async function closeAll(sources: ByteSource[]): Promise<void> {
  await Promise.all(sources.map((s) => s.close?.()));
  sources.length = 0;
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function fmtShape(t: TensorInfo): string {
  return `[${t.shape.join(', ')}]`;
}
