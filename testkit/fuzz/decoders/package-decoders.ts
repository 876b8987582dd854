/**
 * The model package's decoders under fuzz: the manifest (from the server or a peer), the ONNX
 * graphs and the llama2.c tokenizer (pieces a peer sent, once their hashes match a manifest).
 * The valid inputs are stories260K compiled for real (f32), so every field is one the compiler
 * writes. A manifest is also fuzzed with its id recomputed after the edit: the id proves only
 * that someone hashed the content, so the shape check behind it must hold on its own.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { openCheckpoint } from '../../../cli/open-checkpoint.ts';
import { manifestId, parseManifest } from '../../../shared/model/manifest.ts';
import type { Manifest } from '../../../shared/model/manifest.ts';
import { decodeModel } from '../../../shared/model/onnx/schema.ts';
import { parseLlama2cTokenizer } from '../../../shared/tokenizer/llama2c.ts';
import { compileTo, STORIES_260K, TOK_512 } from '../../model-fixtures.ts';
import type { DecoderSpec } from './decoder.ts';
import { mutatedBytes, mutatedJsonText } from './mutations.ts';

const describeBytes = (bytes: Uint8Array) => `bytes(${bytes.byteLength}) ${Buffer.from(bytes.subarray(0, 24)).toString('hex')}${bytes.byteLength > 24 ? '…' : ''}`;

/** Temp folders are the caller's to remove (removeTempDirs). */
export async function packageDecoders(): Promise<DecoderSpec<never>[]> {
  const { dir, manifest } = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'f32');
  const graphs = await Promise.all(manifest.shards.slice(0, 3).map((s) => readFile(join(dir, s.graph)).then((b) => new Uint8Array(b))));
  const tokenizer = new Uint8Array(await readFile(TOK_512));

  const specs: DecoderSpec<any, any>[] = [
    {
      name: 'manifest',
      from: "GET /packages/<id>/manifest.json: the package's description, from the server (its id must match its content)",
      input: fc.record({ text: mutatedJsonText(fc.constant(manifest)), reidentify: fc.boolean() }),
      async decode({ text, reidentify }: { text: string; reidentify: boolean }) {
        let sent = text;
        if (reidentify) {
          // The content's own hash as its id: what a server lying about its package would send.
          let value: unknown;
          try {
            value = JSON.parse(text);
          } catch {
            value = undefined;
          }
          if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
            const { id: _, ...rest } = value as Manifest;
            // A document too deep to hash (100,000 nested arrays) goes as it is: the shape check comes first.
            const id = await manifestId(rest).catch(() => undefined);
            if (id) sent = JSON.stringify({ ...rest, id });
          }
        }
        return parseManifest(sent, 'fuzz');
      },
      describe: ({ text, reidentify }: { text: string; reidentify: boolean }) => `${reidentify ? 're-identified ' : ''}${text.length > 200 ? `${text.slice(0, 200)}…(${text.length} chars)` : text}`,
    },
    {
      name: 'ONNX graph',
      from: "a package's .onnx files (embedding, blocks, head), from the swarm or the web seed",
      input: mutatedBytes(fc.constantFrom(...graphs)),
      decode: decodeModel,
      describe: describeBytes,
    },
    {
      name: 'llama2.c tokenizer',
      from: "a package's tokenizer.bin, from the swarm or the web seed",
      input: mutatedBytes(fc.constant(tokenizer)),
      decode: (bytes: Uint8Array) => parseLlama2cTokenizer(bytes, 512),
      describe: describeBytes,
    },
  ];
  return specs as DecoderSpec<never>[];
}
