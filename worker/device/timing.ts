/**
 * How the probes spend their time: a measurement grows its repetitions until one run is long
 * enough to trust the clock, then is sized to a target duration. Devices differ by 1000× (a
 * discrete GPU against SwiftShader, a CPU WebGPU ~50× slower than WASM), so fixed sizes would
 * be either too short to measure or far too long for a handshake.
 */
import { DeviceProbeError } from './errors.ts';

/** A monotonic millisecond clock (performance.now in browsers and Node). */
export type Clock = () => number;

export const defaultClock: Clock = () => performance.now();

/** One window of a measurement: `reps` repetitions took `ms`. */
export interface Timed {
  reps: number;
  ms: number;
}

export interface TimeToTargetOptions {
  /** how long the reported measurement should take in all */
  targetMs: number;
  maxReps: number;
  /** names the measurement in errors */
  source: string;
}

/** Windows per measurement: a median of 5 shrugs off a neighbour's burst on a shared machine. */
const WINDOWS = 5;

/**
 * `run(reps)` does the work `reps` times and returns the milliseconds it took. Runs short
 * trials (each up to ~targetMs/8) to learn the speed, then WINDOWS runs of about
 * targetMs/WINDOWS each, and returns the median window. A single long run would report
 * whatever else the machine did meanwhile (seen: 40–170 GFLOP/s on a busy 2-core host).
 * Browsers coarsen performance.now() to 0.1 ms, hence the calibration floor.
 */
export async function timeToTarget(run: (reps: number) => Promise<number>, options: TimeToTargetOptions): Promise<Timed> {
  const { targetMs, maxReps, source } = options;
  const trialMs = targetMs / 8;
  let reps = 1;
  let ms = await run(reps);
  while (ms < trialMs && reps < maxReps) {
    const scaled = Math.ceil((reps * trialMs) / Math.max(ms, 0.1));
    reps = Math.min(maxReps, Math.max(reps * 2, Math.min(scaled, reps * 16)));
    ms = await run(reps);
  }
  const windowReps = Math.max(1, Math.min(maxReps, Math.round((reps * targetMs) / WINDOWS / Math.max(ms, 0.1))));
  const windows: number[] = [];
  for (let w = 0; w < WINDOWS; w++) windows.push(await run(windowReps));
  const windowMs = median(windows);
  if (!(windowMs > 0) || !Number.isFinite(windowMs)) {
    throw new DeviceProbeError(`the clock did not advance over ${windowReps} repetitions (${windowMs} ms)`, { source });
  }
  return { reps: windowReps, ms: windowMs };
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
