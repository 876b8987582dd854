/**
 * Failures of the device handshake. The scheduler places layers by these measurements, so a
 * probe that cannot measure, or a device that computes wrong answers, must say so by name
 * rather than report a number.
 */
import { InfermeshError } from '../../shared/errors.ts';

/** A probe could not run on this device: shader compile or validation errors, a lost device, a timer that never advanced. */
export class DeviceProbeError extends InfermeshError {
  override name = 'DeviceProbeError';
}

/** The device ran the benchmark but its result is wrong: its speed means nothing and it must not serve layers. */
export class ComputeMismatchError extends InfermeshError {
  override name = 'ComputeMismatchError';
}
