/**
 * Builds the tokenizer a package names in its manifest, and the token ids that end a
 * completion: EOS for Hugging Face models; BOS for llama2.c models, whose story checkpoints
 * end a story by emitting BOS (llama2.c's run.c stops on it, and so do we).
 */
import { TokenizerError } from '../errors.ts';
import type { Manifest } from '../model/manifest.ts';
import { createHuggingFaceTokenizer } from './huggingface.ts';
import { parseLlama2cTokenizer } from './llama2c.ts';
import type { Tokenizer } from './tokenizer.ts';

export interface LoadedTokenizer {
  tokenizer: Tokenizer;
  stopIds: number[];
}

export function loadTokenizer(manifest: Manifest, main: Uint8Array, config?: Uint8Array): LoadedTokenizer {
  const t = manifest.tokenizer;
  if (t.kind === 'llama2c') {
    const tokenizer = parseLlama2cTokenizer(main, manifest.config.vocabSize, t.file);
    return { tokenizer, stopIds: tokenizer.bosId === null ? [] : [tokenizer.bosId] };
  }
  const parse = (bytes: Uint8Array, file: string) => {
    try {
      return JSON.parse(new TextDecoder().decode(bytes)) as object;
    } catch (err) {
      throw new TokenizerError('tokenizer file is not valid JSON', { source: file, cause: err });
    }
  };
  const tokenizer = createHuggingFaceTokenizer(parse(main, t.file), config && t.configFile ? parse(config, t.configFile) : undefined);
  return { tokenizer, stopIds: tokenizer.eosIds };
}
