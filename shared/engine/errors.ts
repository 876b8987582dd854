/** Errors of the shard engine that callers on the other side of a worker boundary branch on. */
import { InfermeshError } from '../errors.ts';

/** A step or end() before any shard was loaded. */
export class EngineNotLoadedError extends InfermeshError {
  override name = 'EngineNotLoadedError';
}

/** The GPU device was lost while a step ran; the request's cache is gone with it. */
export class DeviceLostError extends InfermeshError {
  override name = 'DeviceLostError';
}
