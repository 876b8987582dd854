/** What every bench suite records about the machine it measured on. */
import { availableParallelism } from 'node:os';

export function machineInfo() {
  return { cpus: availableParallelism(), node: process.version, platform: `${process.platform}-${process.arch}` };
}
