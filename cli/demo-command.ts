/**
 * `infermesh demo`: the grid end to end on this machine. Builds the web app when dist/web is
 * missing or stale, starts the grid server on free ports, opens N headless Chromium donor tabs,
 * waits until they serve every layer, generates through them with a Node grid client, and
 * reports the text, the speed, the route and each tab. With --churn every layer gets a standby
 * tab, and the generation runs twice: unbroken, then with one tab of its route (the middle
 * stage's) closed halfway through; the second must survive it with the same text, and the
 * recovery is printed. With --json stdout is one JSON object; status lines always go to stderr.
 * Everything it started is closed before it returns.
 */
import { ensureWebApp } from '../signaling-server/local-grid/web-app.ts';
import { UsageError } from '../shared/errors.ts';
import { median } from '../shared/statistics.ts';
import { ensureSyntheticPackage } from './compile-command.ts';
import { DEFAULT_MODEL, syntheticPackageDir } from './defaults.ts';
import { hopReport, startDemoGrid, tabReport, timeGeneration } from '../signaling-server/local-grid/demo-grid.ts';
import { readPackageManifest } from '../worker/node/package-files.ts';
import type { DemoGrid } from '../signaling-server/local-grid/demo-grid.ts';
import { connect } from '../packages/sdk/src/node.ts';
import type { GenerateOptions } from '../shared/runtime/pipeline.ts';

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
  /** close a tab of the route mid-generation and show the generation surviving it */
  churn?: boolean;
}

/**
 * ceil(nLayers / tabs): the fewest layers per tab that still covers the model, so no tab can hold
 * it whole. With standbys (`replicas` 2, for --churn) half the tabs must cover it.
 */
export function defaultMaxLayersPerNode(nLayers: number, tabs: number, replicas = 1): number {
  return Math.ceil(nLayers / Math.max(1, Math.floor(tabs / replicas)));
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
const round = (x: number, digits = 2) => +x.toFixed(digits);

export async function demoCommand(options: DemoCommandOptions): Promise<void> {
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const { preset, dtype, seed } = DEFAULT_MODEL;
  const modelDir = options.model ?? (await ensureSyntheticPackage(syntheticPackageDir(preset, dtype, seed), DEFAULT_MODEL));
  const manifest = await readPackageManifest(modelDir);
  const { nLayers } = manifest.config;
  const replicas = options.churn ? 2 : 1;
  const maxLayersPerNode = options.maxLayersPerNode ?? defaultMaxLayersPerNode(nLayers, options.tabs, replicas);
  if (maxLayersPerNode * options.tabs < nLayers * replicas) {
    const what = replicas > 1 ? `the model's ${nLayers} layers twice over (--churn gives every layer a standby)` : `the model's ${nLayers} layers`;
    throw new UsageError(`${options.tabs} tab(s) of at most ${maxLayersPerNode} layers cannot hold ${what} (raise --tabs or --max-layers-per-node)`);
  }
  if (manifest.source.startsWith('synthetic:')) log('(synthetic model: random weights, so the text is noise)');

  await ensureWebApp();
  const grid = await startDemoGrid({ modelDir, tabs: options.tabs, maxLayersPerNode, replicas, log }, { connect });
  let result;
  try {
    const route = (await grid.client.route()).hops.map((h) => ({ peerId: h.peerId, layers: h.layers }));
    log(`route: ${route.map((h) => `layers ${h.layers.start}..${h.layers.end - 1} on ${h.peerId.slice(-8)}`).join(' -> ')}`);
    log(`generating ${options.maxTokens} token(s) at most`);
    const sampling = { maxTokens: options.maxTokens, temperature: options.temperature, topP: options.topP, seed: options.seed };
    const gen = await timeGeneration(grid.client, options.prompt, sampling);
    const churn = options.churn ? await churnRun(grid, options.prompt, sampling, gen.text, log) : undefined;
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
      ...(churn && { churn }),
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

/**
 * The same generation again, with the tab of its route's middle stage closed when half the
 * tokens are out: the client swaps in that stage's standby and replays the request onto it.
 */
async function churnRun(grid: DemoGrid, prompt: string, sampling: Partial<GenerateOptions>, unbroken: string, log: (line: string) => void) {
  const at = Math.max(1, Math.floor((sampling.maxTokens ?? 2) / 2));
  log(`churn: generating again; the tab serving the route's middle stage closes after token ${at}`);
  let closedPeerId: string | null = null;
  let text = '';
  let tokens = 0;
  let closedAt: number | undefined;
  let resumedMs: number | undefined;
  for await (const token of grid.client.generate(prompt, sampling)) {
    text += token.text;
    if (token.id === null) continue;
    tokens++;
    if (closedAt !== undefined && resumedMs === undefined) resumedMs = performance.now() - closedAt;
    if (tokens === at) {
      // The route the request is on now: a stage that turned slow may have been swapped already.
      const hops = (await grid.client.route()).hops;
      const hit = hops[Math.floor(hops.length / 2)];
      closedPeerId = hit.peerId;
      log(`churn: closing the tab serving layers ${hit.layers.start}..${hit.layers.end - 1} (${hit.peerId.slice(-8)})`);
      const tab = (await Promise.all(grid.donors.tabs.map(async (t) => ({ t, peerId: ((await t.state()) as { peerId?: string } | null)?.peerId })))).find((x) => x.peerId === hit.peerId)?.t;
      if (!tab) throw new UsageError(`no demo tab is peer ${hit.peerId}`);
      await tab.page.close();
      closedAt = performance.now();
      // That visitor has gone: the report lists the tabs still open.
      grid.donors.tabs.splice(grid.donors.tabs.indexOf(tab), 1);
      void tab.context.close().catch(() => undefined);
    }
  }
  const recoveries = grid.client.routeReport()?.recoveries ?? [];
  for (const r of recoveries) {
    log(`churn: recovery at step ${r.step} (${r.reason}: ${r.cause}); swapped out ${r.swapped.map((p) => p.slice(-8)).join(', ') || 'nothing (fresh streams)'}, replayed ${r.replayedRows} rows onto the new route, answered ${r.ms.toFixed(0)} ms after the fault was noticed`);
  }
  const identical = text === unbroken;
  log(`churn: ${tokens} tokens, the next token ${resumedMs === undefined ? 'never came' : `came ${resumedMs.toFixed(0)} ms`} after the tab closed; text ${identical ? 'identical to' : 'DIFFERENT from'} the unbroken run`);
  const route = (await grid.client.route()).hops.map((h) => ({ peerId: h.peerId, layers: h.layers }));
  return { closedPeerId, closedAfterToken: at, text, identical, recoveries, nextTokenAfterCloseMs: resumedMs === undefined ? null : round(resumedMs, 1), routeAfter: route };
}
