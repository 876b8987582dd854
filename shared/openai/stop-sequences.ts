/**
 * OpenAI's `stop` parameter over a stream of text pieces: text is released as soon as it can
 * no longer turn into a stop sequence, so a streamed reply never shows the start of a stop
 * sequence and then takes it back. Used by completions.ts.
 */

export interface StopMatcher {
  /** Adds a piece; returns the text now safe to show, and whether a stop sequence was reached. */
  push(piece: string): { text: string; stopped: boolean };
  /** Text held back when the stream ends without a stop sequence. */
  flush(): string;
}

export function createStopMatcher(stops: readonly string[]): StopMatcher {
  let pending = '';
  return {
    push(piece) {
      pending += piece;
      let first = -1;
      for (const s of stops) {
        const at = pending.indexOf(s);
        if (at !== -1 && (first === -1 || at < first)) first = at;
      }
      if (first !== -1) {
        const text = pending.slice(0, first);
        pending = '';
        return { text, stopped: true };
      }
      const held = longestStopPrefixSuffix(pending, stops);
      const text = pending.slice(0, pending.length - held);
      pending = pending.slice(pending.length - held);
      return { text, stopped: false };
    },
    flush() {
      const text = pending;
      pending = '';
      return text;
    },
  };
}

/** Length of the longest end of `text` that is the beginning of some stop sequence. */
function longestStopPrefixSuffix(text: string, stops: readonly string[]): number {
  let best = 0;
  for (const s of stops) {
    for (let n = Math.min(s.length - 1, text.length); n > best; n--) {
      if (text.endsWith(s.slice(0, n))) {
        best = n;
        break;
      }
    }
  }
  return best;
}
