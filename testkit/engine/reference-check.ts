/** Checks of engine outputs against the reference forward pass, shared by the Node and browser engine tests. */
import type { Checkpoint } from '../../shared/model/checkpoint.ts';
import { expectedTensors } from '../../shared/model/checkpoint.ts';
import type { ModelConfig } from '../../shared/model/config.ts';
import { dequantizeMatrix, quantizeMatrix } from '../../shared/model/quantize.ts';
import { blockForward } from '../reference/forward.ts';

/** Weights the reference uses: f32 as stored, or what a q4/q8 package multiplies by. */
export async function referenceWeights(checkpoint: Checkpoint, dtype: 'f32' | 'q8' | 'q4'): Promise<(name: string) => Float32Array> {
  const weights = new Map<string, Float32Array>();
  for (const t of expectedTensors(checkpoint.config)) {
    const w = await checkpoint.read(t.name);
    const quantized = dtype !== 'f32' && t.shape.length === 2 && t.name.startsWith('layers.');
    weights.set(t.name, quantized ? dequantizeMatrix(quantizeMatrix(w, t.shape[0], t.shape[1], dtype === 'q4' ? 4 : 8)) : w);
  }
  return (name) => weights.get(name)!;
}

/** The reference hidden state after layers start..end-1 for a prefill of `input` from position 0. */
export function referenceRange(config: ModelConfig, weights: (n: string) => Float32Array, input: Float32Array, start: number, end: number): Float32Array {
  const positions = Array.from({ length: input.length / config.dim }, (_, i) => i);
  let h = input;
  for (let layer = start; layer < end; layer++) h = blockForward(config, weights, layer, h, positions, { k: [], v: [] });
  return h;
}

/** Largest absolute difference, relative to the largest magnitude of the reference. */
export function maxRelativeError(got: ArrayLike<number>, want: Float32Array): number {
  let scale = 0;
  for (const v of want) scale = Math.max(scale, Math.abs(v));
  let err = 0;
  for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(got[i] - want[i]));
  return err / Math.max(scale, 1e-6);
}

/** Root-mean-square difference relative to the reference's root-mean-square. */
export function relativeRms(got: ArrayLike<number>, want: Float32Array): number {
  let diff = 0;
  let norm = 0;
  for (let i = 0; i < want.length; i++) {
    diff += (got[i] - want[i]) ** 2;
    norm += want[i] ** 2;
  }
  return Math.sqrt(diff / Math.max(norm, 1e-30));
}

/**
 * A q4 stage against the reference on the original f32 weights: the gap is 4-bit quantization
 * error, which is large for tiny models (measured 15-27% relative RMS on stories260K, dim 64;
 * 7-9% on synthetic:tiny). So the bound is the quantization error itself, measured as the
 * reference on dequantized weights against the reference on f32 weights, plus 5%: the engine
 * may add float rounding to it, never a wrong layer, weight or cache (which would add >30%).
 */
export function q4Bound(quantizationRms: number): number {
  return quantizationRms * 1.05 + 1e-4;
}
