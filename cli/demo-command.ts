/**
 * `infermesh demo`: the grid end to end on this machine. Builds the web app when dist/web is
 * missing or stale, starts the grid server on free ports, opens N headless Chromium donor tabs,
 * waits until they serve every layer, generates through them with a Node grid client, and
 * reports the text, the speed, the route and each tab. With --json stdout is one JSON object;
 * status lines always go to stderr. Everything it started is closed before it returns.
 */
import { ensureWebApp } from '../signaling-server/local-grid/web-app.ts';
import { UsageError } from '../shared/errors.ts';
import { median } from '../shared/statistics.ts';
import { ensureSyntheticPackage } from './compile-command.ts';
import { DEFAULT_MODEL, syntheticPackageDir } from './defaults.ts';
import { hopReport, startDemoGrid, tabReport, timeGeneration } from '../signaling-server/local-grid/demo-grid.ts';
import { readPackageManifest } from '../worker/node/package-files.ts';

export interface DemoCommandOptions {
  tabs: number;
  model?: string;
  prompt: string;
  maxTokens: number;
  /** default: ceil(nLayers / tabs), so the model is split across the tabs */
  maxLayersPerNode?: number;
  temperature: number;
  topP: number;
  seed: number;
  json?: boolean;
}

/** ceil(nLayers / tabs): the fewest layers per tab that still covers the model, so no tab can hold it whole. */
export function defaultMaxLayersPerNode(nLayers: number, tabs: number): number {
  return Math.ceil(nLayers / tabs);
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
const round = (x: number, digits = 2) => +x.toFixed(digits);

export async function demoCommand(options: DemoCommandOptions): Promise<void> {
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const { preset, dtype, seed } = DEFAULT_MODEL;
  const modelDir = options.model ?? (await ensureSyntheticPackage(syntheticPackageDir(preset, dtype, seed), DEFAULT_MODEL));
  const manifest = await readPackageManifest(modelDir);
  const { nLayers } = manifest.config;
  const maxLayersPerNode = options.maxLayersPerNode ?? defaultMaxLayersPerNode(nLayers, options.tabs);
  if (maxLayersPerNode * options.tabs < nLayers) {
    throw new UsageError(`${options.tabs} tab(s) of at most ${maxLayersPerNode} layers cannot hold the model's ${nLayers} layers (raise --tabs or --max-layers-per-node)`);
  }
  if (manifest.source.startsWith('synthetic:')) log('(synthetic model: random weights, so the text is noise)');

  await ensureWebApp();
  const grid = await startDemoGrid({ modelDir, tabs: options.tabs, maxLayersPerNode, log });
  let result;
  try {
    const route = (await grid.client.route()).hops.map((h) => ({ peerId: h.peerId, layers: h.layers }));
    log(`route: ${route.map((h) => `layers ${h.layers.start}..${h.layers.end - 1} on ${h.peerId.slice(-8)}`).join(' -> ')}`);
    log(`generating ${options.maxTokens} token(s) at most`);
    const gen = await timeGeneration(grid.client, options.prompt, { maxTokens: options.maxTokens, temperature: options.temperature, topP: options.topP, seed: options.seed });
    const hops = hopReport(grid);
    const msPerToken = mean(gen.decodeStepsMs);
    result = {
      model: { name: manifest.name, packageId: manifest.id, nLayers, dtype: manifest.dtype },
      prompt: options.prompt,
      text: gen.text,
      tokens: gen.tokens,
      // decode speed: the steps after the first token (the first carries the prefill and the route setup)
      tokensPerSecond: msPerToken > 0 ? round(1000 / msPerToken) : null,
      msPerToken: round(msPerToken, 3),
      msPerTokenStatistic: 'mean of the decode steps after the first token',
      msPerTokenMedian: round(median(gen.decodeStepsMs) ?? 0, 3),
      firstTokenMs: round(gen.firstTokenMs, 1),
      maxLayersPerNode,
      route,
      hops,
      direct: hops.length > 0 && hops.every((h) => h.transport === 'webrtc-direct'),
      tabs: await tabReport(grid),
      timeToServingMs: grid.timeToServingMs,
      timeToLinksMs: grid.timeToLinksMs,
    };
  } finally {
    await grid.close();
  }
  log('closed the tabs and the server');
  if (options.json) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return;
  }
  process.stdout.write(`${result.text}\n`);
  log(
    `${result.tokens} tokens through ${options.tabs} tab(s), first after ${result.firstTokenMs.toFixed(0)} ms, then ${result.msPerToken.toFixed(1)} ms/token` +
      (result.tokensPerSecond ? ` (${result.tokensPerSecond} tokens/s)` : ''),
  );
  for (const t of result.tabs) {
    log(`  tab ${t.peerId?.slice(-8)}: layers ${t.layers ? `${t.layers.start}..${t.layers.end - 1}` : 'none'} on ${t.executionProvider} (${t.msPerLayer} ms/layer), pieces ${t.pieces?.fromPeers ?? 0} from peers, ${t.pieces?.fromWebSeed ?? 0} from the web seed`);
  }
  log(`${result.direct ? 'every hop direct WebRTC' : 'some hops relayed'}; all tabs serving ${(result.timeToServingMs / 1000).toFixed(1)} s after the first page opened`);
}
