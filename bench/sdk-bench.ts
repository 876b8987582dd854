/**
 * `bench sdk`: the SDK package as an app gets it, and its two Node runtimes side by side.
 * - install: `npm pack` of packages/sdk and a plain `npm install` of the tarball into a fresh
 *   project (testkit/sdk-package.ts): seconds, packages, bytes on disk, install scripts; and the
 *   same with --legacy-peer-deps, which leaves out the peers npm installs on its own (react-native,
 *   which @libp2p/webrtc's react-native-webrtc names as a peer).
 * - download: the client's share of the default model (embedding, head, tokenizer), measured by
 *   connect()'s progress events against a grid server.
 * - runtimes: connect time and greedy ms per token of the client on onnxruntime-node and on
 *   onnxruntime-web's WASM, rounds interleaved, through one Node donor serving every layer; the
 *   texts must match.
 */
import { join } from 'node:path';
import { ensureSyntheticPackage } from '../cli/compile-command.ts';
import { DEFAULT_MODEL, DEFAULT_PROMPT, syntheticPackageDir } from '../cli/defaults.ts';
import { startNodeDonor } from '../cli/node-donor.ts';
import { connect } from '../packages/sdk/src/node.ts';
import type { NodeRuntime } from '../packages/sdk/src/node.ts';
import { median } from '../shared/statistics.ts';
import { startGridServer } from '../signaling-server/grid-server.ts';
import { removeTempDirs, tempDir } from '../testkit/model-fixtures.ts';
import { installConsumer, packSdk } from '../testkit/sdk-package.ts';
import { machineInfo } from './machine.ts';

export interface SdkBenchOptions {
  tokens: number;
  rounds: number;
  /** a model package directory (default: the default model, synthetic:110m q4) */
  modelDir?: string;
  /** measure the install (default true) */
  install?: boolean;
}

const MiB = 2 ** 20;
const RUNTIMES: NodeRuntime[] = ['native', 'wasm'];

export async function sdkBench({ tokens, rounds, modelDir, install: measureIt = true }: SdkBenchOptions) {
  try {
    const install = measureIt ? await measureInstall() : undefined;
    const runtimes = await measureRuntimes(tokens, rounds, modelDir);
    return { machine: machineInfo(), install, ...runtimes };
  } finally {
    await removeTempDirs();
  }
}

async function measureInstall() {
  const work = await tempDir('infermesh-sdk-bench-');
  const packed = await packSdk(work);
  const result: Record<string, unknown> = { tarballBytes: packed.bytes };
  for (const [name, flags] of [['plain', []], ['legacyPeerDeps', ['--legacy-peer-deps']]] as const) {
    const installed = await installConsumer(join(work, name), packed.tarball, [...flags]);
    result[name] = { seconds: round(installed.seconds, 1), packages: installed.packages, nodeModulesMiB: round(installed.nodeModulesBytes / MiB, 1), installScripts: installed.installScripts };
  }
  return result;
}

async function measureRuntimes(tokens: number, rounds: number, givenModel?: string) {
  const modelDir = givenModel ?? (await ensureSyntheticPackage(syntheticPackageDir(DEFAULT_MODEL.preset, DEFAULT_MODEL.dtype, DEFAULT_MODEL.seed), DEFAULT_MODEL, { quiet: true }));
  const server = await startGridServer({ host: '127.0.0.1', port: 0, modelDir });
  const donor = await startNodeDonor({ serverUrl: server.url, payoutKeyFile: join(await tempDir(), 'donor.key') }, { update() {}, throughput() {}, error() {} });
  try {
    await server.coordinator.waitForCoverage(1, 300_000);
    const seen = Object.fromEntries(RUNTIMES.map((r) => [r, { connectMs: [] as number[], msPerToken: [] as number[], texts: new Set<string>() }]));
    let download = 0;
    // A first generation warms the donor (its sessions, the link) before anything is timed.
    for (let r = -1; r < rounds; r++) {
      for (const runtime of RUNTIMES) {
        const started = performance.now();
        const grid = await connect({ url: server.url, runtime, onProgress: (p) => (download = p.total) });
        const connected = performance.now();
        let text = '';
        let first = 0;
        let count = 0;
        for await (const token of grid.generate(DEFAULT_PROMPT, { maxTokens: tokens, temperature: 0 })) {
          if (count++ === 0) first = performance.now();
          text += token.text;
        }
        const ended = performance.now();
        await grid.close();
        if (r < 0) continue;
        seen[runtime].connectMs.push(connected - started);
        seen[runtime].msPerToken.push((ended - first) / Math.max(1, count - 1));
        seen[runtime].texts.add(text);
      }
    }
    const summary = (runtime: NodeRuntime) => ({
      connectMs: round(median(seen[runtime].connectMs)!, 0),
      msPerToken: round(median(seen[runtime].msPerToken)!, 2),
      msPerTokenRange: [round(Math.min(...seen[runtime].msPerToken), 2), round(Math.max(...seen[runtime].msPerToken), 2)],
    });
    const native = summary('native');
    const wasm = summary('wasm');
    return {
      model: `${server.manifest.name} ${server.manifest.dtype}`,
      clientDownloadBytes: download,
      clientDownloadMiB: round(download / MiB, 1),
      tokens,
      rounds,
      runtimes: { native, wasm },
      wasmOverNativeMsPerToken: round(wasm.msPerToken / native.msPerToken, 3),
      sameText: new Set([...seen.native.texts, ...seen.wasm.texts]).size === 1,
    };
  } finally {
    await donor.stop();
    await server.close();
  }
}

const round = (x: number, digits: number) => Number(x.toFixed(digits));
