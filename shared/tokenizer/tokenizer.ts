/**
 * The tokenizer contract the runtime and CLI use, whatever the checkpoint format:
 * llama2.c tokenizer.bin (llama2c.ts) or Hugging Face tokenizer.json (huggingface.ts).
 */

/** Turns a stream of generated tokens into text pieces, holding back split multi-byte characters. */
export interface StreamDecoder {
  /** Text completed by `token` (may be empty while a multi-byte character is split across tokens). */
  push(prev: number, token: number): string;
  /** Text still held back when the stream ends. */
  flush(): string;
}

export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosIds: number[];
  /**
   * The most characters (UTF-16 units) of text one token stands for: the longest piece in the
   * vocabulary. Past this × a context's tokens, a prompt cannot fit it, and callers refuse it
   * before paying for an encode that would only say so.
   */
  readonly maxPieceChars: number;
  /** Encodes a prompt the way the model was trained to see it (BOS etc. included when the model expects it). */
  encode(text: string): number[];
  /** Decodes one token given the previous one (for streaming), returning its text piece. */
  decodePiece(prev: number, token: number): string;
  decode(tokens: number[]): string;
  /** A fresh decoder for one generation stream; state lives in it, not in the tokenizer. */
  createStreamDecoder(): StreamDecoder;
}
