/**
 * A whole grid on this machine, as `infermesh demo` and `bench grid` run it: the grid server
 * (relay, coordinator, HTTP) on free ports, N headless Chromium donor tabs on its donor page,
 * and a grid client (the caller's: `infermesh demo` and `bench grid` pass the SDK's Node
 * `connect`, packages/sdk) once every layer is served.
 * Also the timing of one generation through it and the reports both print.
 */
import { InfermeshError } from '../../shared/errors.ts';
import type { ConnectOptions, GridClient } from '../../shared/grid/client.ts';
import type { GenerateOptions } from '../../shared/runtime/pipeline.ts';
import { startGridServer } from '../grid-server.ts';
import type { GridServer } from '../grid-server.ts';
import { openDonorTabs } from './donor-tabs.ts';
import type { DonorTab, DonorTabs } from './donor-tabs.ts';

/** The tabs did not all come to serve (a tab failed, or placement never settled in time). */
export class GridNotServingError extends InfermeshError {
  override name = 'GridNotServingError';
}

/** How often the registry and the tabs are looked at while waiting: cheap, and fine enough for a time measured in seconds. */
const POLL_MS = 200;

export interface DemoGridOptions {
  modelDir: string;
  tabs: number;
  maxLayersPerNode: number;
  /** default 300 s: downloading and loading 12 layers of the 110M model takes a few seconds per tab; longer is a stuck grid */
  servingTimeoutMs?: number;
  /**
   * default 60 s: how long to wait for the tabs' link probes. Two tabs introduced at once dial
   * each other at once, and that can leave a half-open WebRTC connection on one side that takes
   * 10-20 s to be dropped; a stage dialing over it before then times out. A probe that came back
   * proves the link the stages will use, so the grid is ready when every tab has measured every other.
   */
  linksTimeoutMs?: number;
  /** every layer served by this many tabs before the client starts (default 1; 2 gives every hop a standby) */
  replicas?: number;
  /** status lines for people (stderr) */
  log?: (line: string) => void;
}

export interface DemoGridDeps {
  /** opens the grid client once every layer is served */
  connect(options: ConnectOptions): Promise<GridClient>;
}

export interface DemoGrid {
  server: GridServer;
  donors: DonorTabs;
  client: GridClient;
  /** from opening the first donor page (browser launch included) until every tab serves */
  timeToServingMs: number;
  /** from the same start until every tab has measured its link to every other (null: not within the wait) */
  timeToLinksMs: number | null;
  close(): Promise<void>;
}

/** The live state of a donor page (web/donor/view.ts DonorState), the fields read here. */
interface TabState {
  status?: string;
  peerId?: string;
  device?: { executionProvider: string; msPerLayer: number; label: string };
  layers?: { start: number; end: number };
  download?: { total: number; fromPeers: number; fromWebSeed: number; resumed: number; badPieces: number };
}

const tabState = async (tab: DonorTab) => ((await tab.state()) ?? {}) as TabState;
const range = (l?: { start: number; end: number }) => (l ? `${l.start}..${l.end - 1}` : 'none');

export async function startDemoGrid(options: DemoGridOptions, deps: DemoGridDeps): Promise<DemoGrid> {
  const { servingTimeoutMs = 300_000, linksTimeoutMs = 60_000 } = options;
  const log = options.log ?? (() => undefined);
  const server = await startGridServer({ host: '127.0.0.1', port: 0, modelDir: options.modelDir, maxLayersPerNode: options.maxLayersPerNode });
  let donors: DonorTabs | undefined;
  let client: GridClient | undefined;
  const close = async () => {
    // Each part is closed even when another fails to: a demo must not leave a browser behind.
    for (const part of [client, donors, server]) await part?.close().catch((err: unknown) => log(`closing: ${(err as Error).message}`));
  };
  try {
    log(`grid server at ${server.url} (model ${server.manifest.name}, ${server.manifest.config.nLayers} layers, at most ${options.maxLayersPerNode} per tab)`);
    const opened = performance.now();
    donors = await openDonorTabs(server.url, options.tabs);
    log(`opened ${options.tabs} donor tab(s) in ${Math.round(performance.now() - opened)} ms`);
    await waitUntilServing(server, donors, options.tabs, options.replicas ?? 1, servingTimeoutMs, log);
    const timeToServingMs = Math.round(performance.now() - opened);
    log(`every layer served after ${timeToServingMs} ms`);
    const linked = await waitForLinks(server, linksTimeoutMs);
    const timeToLinksMs = linked ? Math.round(performance.now() - opened) : null;
    log(linked ? `every tab measured its links to the others after ${timeToLinksMs} ms` : `warning: not every link between tabs was measured within ${linksTimeoutMs} ms; a stage may stall on it`);
    client = await deps.connect({ url: server.url, model: server.manifest.id });
    return { server, donors, client, timeToServingMs, timeToLinksMs, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * Resolves when all `count` tabs have joined, each serves its assignment or has none, and every
 * layer is served by `replicas` tabs; rejects as soon as a tab reports an error. Polled rather than event-driven:
 * the coordinator tests its waiters only when a tab starts or stops serving, and a tab that
 * joins with no assignment changes neither.
 */
async function waitUntilServing(server: GridServer, donors: DonorTabs, count: number, replicas: number, timeoutMs: number, log: (line: string) => void): Promise<void> {
  const registry = server.coordinator.registry;
  const deadline = performance.now() + timeoutMs;
  const last: string[] = [];
  for (;;) {
    const states = await Promise.all(donors.tabs.map(tabState));
    for (const [i, s] of states.entries()) {
      const line = `${s.status ?? 'loading page'}${s.layers ? ` layers ${range(s.layers)}` : ''}`;
      if (line !== last[i]) log(`tab ${i + 1}: ${line}`);
      last[i] = line;
      if (s.status === 'error') {
        const errors = [...(await donors.tabs[i].donorErrors()), ...donors.tabs[i].errors];
        throw new GridNotServingError(`donor tab ${i + 1} failed: ${errors[0] ?? 'no error message'}`);
      }
    }
    const peers = [...registry.peers.values()].filter((p) => p.role === 'donor');
    const settled = peers.length === count && peers.every((p) => p.serving || !p.assignment);
    if (settled && registry.coverage().every((c) => c >= replicas)) return;
    if (performance.now() > deadline) {
      throw new GridNotServingError(`the tabs were not all serving after ${timeoutMs} ms (${peers.length} of ${count} joined; coverage per layer ${registry.coverage().join(',')})`);
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** True once every serving donor reported an RTT to every other serving donor; false after `timeoutMs`. */
export async function waitForLinks(server: GridServer, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const serving = [...server.coordinator.registry.peers.values()].filter((p) => p.role === 'donor' && p.serving);
    if (serving.every((a) => serving.every((b) => a === b || a.rtt.has(b.peerId) || b.rtt.has(a.peerId)))) return true;
    if (performance.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

export interface TimedGeneration {
  text: string;
  /** completion tokens (ids sampled) */
  tokens: number;
  /** prompt in, first token out (prefill, route setup on a first request) */
  firstTokenMs: number;
  /** milliseconds between consecutive tokens after the first: one per decode step */
  decodeStepsMs: number[];
}

export async function timeGeneration(client: GridClient, prompt: string, options: Partial<GenerateOptions>): Promise<TimedGeneration> {
  const started = performance.now();
  let text = '';
  const at: number[] = [];
  for await (const token of client.generate(prompt, options)) {
    text += token.text;
    if (token.id !== null) at.push(performance.now());
  }
  return { text, tokens: at.length, firstTokenMs: at.length ? at[0] - started : 0, decodeStepsMs: at.slice(1).map((t, i) => t - at[i]) };
}

/** The route's hops as the client measured them, with the RTT a donor's link probe reported for that pair when there is one. */
export function hopReport(grid: DemoGrid) {
  const peers = grid.server.coordinator.registry.peers;
  const id = (end: string) => (end === 'client' ? grid.client.peerId : end);
  const rtt = (a: string, b: string) => peers.get(a)?.rtt.get(b) ?? peers.get(b)?.rtt.get(a);
  return (grid.client.routeReport()?.hops ?? []).map((h) => {
    const rttMs = rtt(id(h.from), id(h.to));
    return { from: h.from, to: h.to, layers: h.layers ?? null, stageMs: h.stageMs ?? null, transport: h.transport, ...(rttMs !== undefined && { rttMs: +rttMs.toFixed(2) }) };
  });
}

/** What each tab says about itself: the device it measured, the layers it serves, where its pieces came from. */
export async function tabReport(grid: DemoGrid) {
  return Promise.all(
    grid.donors.tabs.map(async (tab) => {
      const s = await tabState(tab);
      return {
        peerId: s.peerId ?? null,
        status: s.status ?? null,
        executionProvider: s.device?.executionProvider ?? null,
        device: s.device?.label ?? null,
        msPerLayer: s.device ? +s.device.msPerLayer.toFixed(3) : null,
        layers: s.layers ?? null,
        pieces: s.download ? { total: s.download.total, fromPeers: s.download.fromPeers, fromWebSeed: s.download.fromWebSeed, resumed: s.download.resumed } : null,
      };
    }),
  );
}
