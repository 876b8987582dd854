/**
 * The shape of a manifest (manifest.ts), as a schema (zod): a manifest arrives from a server or
 * a peer, and its id only proves that its content is what someone hashed, not that the content
 * is a manifest. Checked before anything reads a field, so a malformed one is refused by name
 * (PackageError naming the field) rather than failing later as a TypeError deep in a loader.
 */
import { z } from 'zod';

const name = z.string().min(1).max(4096);
const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits (SHA-256)');
const positive = z.int().min(1);

const config = z.looseObject({
  architecture: z.enum(['llama', 'mistral', 'qwen2']),
  dim: positive,
  hiddenDim: positive,
  nLayers: positive,
  nHeads: positive,
  nKvHeads: positive,
  headDim: positive,
  vocabSize: positive,
  maxSeqLen: positive,
  ropeTheta: z.number().positive(),
  normEps: z.number().positive(),
  qkvBias: z.boolean(),
  slidingWindow: positive.optional(),
  tiedEmbeddings: z.boolean(),
});

const shard = z.discriminatedUnion('kind', [
  z.looseObject({ kind: z.literal('embed'), graph: name, data: name }),
  z.looseObject({ kind: z.literal('block'), layer: z.int().min(0), graph: name, data: name }),
  z.looseObject({ kind: z.literal('head'), graph: name, data: name }),
]);

const tokenizer = z.discriminatedUnion('kind', [
  z.looseObject({ kind: z.literal('llama2c'), file: name }),
  z.looseObject({ kind: z.literal('huggingface'), file: name, configFile: name.optional() }),
]);

const file = z.looseObject({ path: name, size: z.int().min(0), pieces: z.array(hex64) });

export const manifestShape = z.looseObject({
  id: hex64,
  name: z.string().max(4096),
  source: z.string().max(4096),
  architecture: z.enum(['llama', 'mistral', 'qwen2']),
  config,
  dtype: z.enum(['f32', 'q8', 'q4']),
  tokenizer,
  pieceSize: positive,
  shards: z.array(shard).min(1),
  files: z.array(file).min(1),
});

/** Why `value` is not a manifest (the first field at fault), or undefined when it is one. */
export function manifestShapeProblem(value: unknown): string | undefined {
  const parsed = manifestShape.safeParse(value);
  if (parsed.success) {
    const m = parsed.data;
    // An empty file is one piece: the hash of no bytes (createPieceHasher).
    const wrong = m.files.find((f) => f.pieces.length !== Math.max(1, Math.ceil(f.size / m.pieceSize)));
    return wrong && `files: ${wrong.path.slice(0, 80)} has ${wrong.pieces.length} piece hashes for ${wrong.size} bytes in pieces of ${m.pieceSize}`;
  }
  const issue = parsed.error.issues[0];
  return `${issue.path.map(String).join('.') || 'the manifest'}: ${issue.message}`;
}
