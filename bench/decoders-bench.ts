/**
 * Every decoder that takes bytes or JSON from the network, fuzzed one by one (issue 19):
 * `--cases` inputs each (default 10,000) from `--seed`, reported per decoder as accepted,
 * refused by error name, and crashes (must be 0: a crash is any throw that is not a named
 * InfermeshError, a hang, or an accepted input that is not consistent), with the first
 * crashing inputs. The harness is testkit/fuzz/decoders/; its test runs 300 cases each.
 */
import { machineInfo } from './machine.ts';
import { removeTempDirs } from '../testkit/model-fixtures.ts';
import { fuzzDecoders } from '../testkit/fuzz/decoders/run-decoders.ts';

export interface DecodersBenchOptions {
  cases: number;
  seed: number;
  only?: string[];
  progress?: boolean;
}

export async function decodersBench(options: DecodersBenchOptions) {
  try {
    const report = await fuzzDecoders({
      ...options,
      onDecoder: options.progress ? (t) => process.stderr.write(`decoders: ${t.name}: ${t.cases} cases, ${t.crashes} crashes, ${t.ms} ms\n`) : undefined,
    });
    return { suite: 'decoders', machine: machineInfo(), ...report };
  } finally {
    await removeTempDirs();
  }
}
