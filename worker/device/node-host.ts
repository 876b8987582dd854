/**
 * A Node host's CPU identity for the handshake (Node only: reads node:os). Browsers use
 * browserHost in host.ts.
 */
import { availableParallelism, cpus } from 'node:os';
import type { HostInfo } from './host.ts';

export function nodeHost(): HostInfo {
  return {
    runtime: 'node',
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    cores: availableParallelism(),
    platform: `${process.platform}-${process.arch}`,
  };
}
