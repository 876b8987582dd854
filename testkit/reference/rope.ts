/**
 * Rotary position embedding for the reference forward pass: the inverse frequencies
 * (with Hugging Face `rope_scaling`) and the rotate-half rotation itself. Kept apart from
 * forward.ts so tests can check the rotation on its own, in float64.
 */
import type { ModelConfig } from '../../shared/model/config.ts';

/**
 * inv_freq[i] = theta^(-2i / headDim) for i < headDim/2, then scaled the way Hugging Face's
 * ROPE_INIT_FUNCTIONS do: 'linear' divides every frequency by the factor (equivalent to
 * dividing positions), 'llama3' follows _compute_llama3_parameters.
 */
export function ropeInverseFrequencies(config: ModelConfig): Float64Array {
  const half = config.headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(config.ropeTheta, (2 * i) / config.headDim);
  const scaling = config.ropeScaling;
  if (!scaling) return inv;
  if (scaling.type === 'linear') {
    for (let i = 0; i < half; i++) inv[i] /= scaling.factor;
    return inv;
  }
  // llama3: long wavelengths (low frequencies) are stretched by `factor`, short ones are kept,
  // and the band between is interpolated so the spectrum stays continuous.
  const { factor, lowFreqFactor, highFreqFactor, originalMaxPositionEmbeddings: orig } = scaling;
  const lowFreqWavelen = orig / lowFreqFactor;
  const highFreqWavelen = orig / highFreqFactor;
  for (let i = 0; i < half; i++) {
    const wavelen = (2 * Math.PI) / inv[i];
    if (wavelen < highFreqWavelen) continue;
    if (wavelen > lowFreqWavelen) {
      inv[i] /= factor;
      continue;
    }
    const smooth = (orig / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
    inv[i] = ((1 - smooth) * inv[i]) / factor + smooth * inv[i];
  }
  return inv;
}

/**
 * Rotates `nHeads` consecutive heads of `x` (each `headDim` long) to absolute `position`, in the
 * HF rotate-half layout: component i pairs with i + headDim/2 and turns by position * invFreq[i].
 * Returns a new array; `x` is left alone.
 */
export function applyRotary(
  x: Float64Array,
  nHeads: number,
  headDim: number,
  invFreq: Float64Array,
  position: number,
): Float64Array {
  const half = headDim / 2;
  if (invFreq.length !== half) throw new Error(`rotary: ${invFreq.length} frequencies for head size ${headDim}`);
  if (x.length !== nHeads * headDim) throw new Error(`rotary: vector of ${x.length} is not ${nHeads} x ${headDim}`);
  const out = new Float64Array(x.length);
  for (let i = 0; i < half; i++) {
    const angle = position * invFreq[i];
    const cos = Math.cos(angle);
    const sin = Math.sin(angle);
    for (let h = 0; h < nHeads; h++) {
      const a = x[h * headDim + i];
      const b = x[h * headDim + i + half];
      out[h * headDim + i] = a * cos - b * sin;
      out[h * headDim + i + half] = b * cos + a * sin;
    }
  }
  return out;
}
