/**
 * The cheats a test can make a stage commit, and their URL form (`?fault=` on the test kit's
 * faulty donor page, testkit/pages/faulty-donor/). What each does to an engine is
 * stage-faults.ts; the engine that serves with one is faulty-engine.ts.
 */
import { InfermeshError } from '../../shared/errors.ts';

/**
 * The cheats a test can make a stage commit, each named for what a real cheater saves by it.
 * The fault is applied inside the engine (faulty-engine.ts), so the same code cheats in a browser worker and in Node.
 */
export type StageFault =
  /** Layers run with weights that are not the package's (same shapes and value statistics): saves fetching the package, serving a model already held. */
  | { kind: 'other-model' }
  /** An f32 package's layers run as q4 (MatMulNBits): saves 7/8 of the weight memory and bandwidth. */
  | { kind: 'q4-weights' }
  /** One layer of the range is not run (the last, or the middle one of 3 or more): saves that layer's compute and memory. */
  | { kind: 'skip-layer' }
  /** Gaussian noise of `sigma` × each output row's RMS added to every value: what a sloppier kernel or lower precision would cost, made visible at a stated size. */
  | { kind: 'noise'; sigma: number }
  /** From the second decode step on, the output of one step earlier for the same request: saves computing at all. */
  | { kind: 'replay-old-output' };

export type StageFaultKind = StageFault['kind'];
export const STAGE_FAULT_KINDS: readonly StageFaultKind[] = ['other-model', 'q4-weights', 'skip-layer', 'noise', 'replay-old-output'];

/** A fault switch that names no known fault, or a fault that cannot apply to the shard loaded. */
export class StageFaultError extends InfermeshError {
  override name = 'StageFaultError';
}

/**
 * The URL form of a stage fault (`?fault=` on the donor page): `other-model`, `q4-weights`,
 * `skip-layer`, `noise:<sigma>` (sigma a positive number, × the row RMS) or `replay-old-output`.
 */
export function parseStageFault(text: string): StageFault {
  const [kind, arg, ...rest] = text.trim().split(':');
  const bad = (why: string): never => {
    throw new StageFaultError(`bad stage fault "${text}": ${why} (one of other-model, q4-weights, skip-layer, noise:<sigma>, replay-old-output)`);
  };
  if (rest.length > 0) bad('too many ":" parts');
  switch (kind) {
    case 'noise': {
      if (arg === undefined || arg === '') bad('noise needs a size, e.g. noise:0.01 (sigma × the row RMS)');
      const sigma = Number(arg);
      if (!Number.isFinite(sigma) || sigma <= 0) bad(`noise size "${arg}" is not a positive number`);
      return { kind, sigma };
    }
    case 'other-model':
    case 'q4-weights':
    case 'skip-layer':
    case 'replay-old-output':
      if (arg !== undefined) bad(`${kind} takes no value`);
      return { kind };
    default:
      return bad(`unknown fault "${kind}"`);
  }
}

