/**
 * Summaries of measured timings, as the benches, the demo and route reports print them.
 * The median of an even count is the upper middle value (a value that was measured, not a
 * mean of two); undefined when there is nothing to summarize.
 */
export function median(values: readonly number[]): number | undefined {
  return values.length ? [...values].sort((a, b) => a - b)[values.length >> 1] : undefined;
}
