/**
 * What a donor sees of its own tab, live: who it is on the grid, its device, the layers it was
 * given, how their download goes, what it has served, and anything that went wrong. Plain DOM;
 * web/donor/main.ts owns the state and calls `update` as it changes.
 *
 * Every value sits in an element with a stable `data-testid` whose text is the value alone (a
 * number in plain decimal, a layer range as `start-end` with `end` exclusive like LayerRange,
 * empty while unknown), so the e2e tests read it directly; CSS shows a dash for empty values.
 * Earnings are left out on purpose until settlement pays real amounts.
 */
import type { CampaignProgress } from './campaign-runner.ts';
import type { SwarmProgress } from '../../shared/swarm/swarm-fetcher.ts';
import type { EngineThreads } from '../../shared/engine/api.ts';
import { createThroughputChart } from './throughput-chart.ts';
import './view.css';

export type DonorStatus = 'connecting' | 'benchmarking' | 'downloading' | 'loading' | 'serving' | 'error';

export interface DonorState {
  status: DonorStatus;
  peerId?: string;
  /** the device handshake's result: what runs the layers and how fast */
  device?: { label: string; executionProvider: string; msPerLayer: number };
  /** the assigned range, `end` exclusive */
  layers?: { start: number; end: number };
  nLayers?: number;
  /** the swarm's progress on the assigned layers' pieces (shared/swarm/swarm-fetcher.ts) */
  download?: SwarmProgress;
  requestsServed: number;
  tokensServed: number;
  tokensPerSecond: number;
  /** peers this tab is connected to */
  peers: number;
  /** the session with the coordinator: open, or lost (why) and being opened again; how often it was */
  coordinator?: { connected: boolean; rejoins: number; lost?: string };
  /** what the validator made of this tab's work (shared/grid/stage-attestor.ts) */
  trust?: TrustState;
  /** the threads the tab computes with, of the machine's cores */
  threads?: EngineThreads;
  /** what the tab costs its machine: the share of time its engine computed lately, and the memory it holds */
  cost?: { computePercent: number; memoryBytes: number };
  /** the benchmark campaign this tab runs (`?campaign=<id>`), when it runs one */
  campaign?: CampaignProgress;
}

export interface TrustState {
  /** requests this tab committed to and answered challenges for */
  committed: number;
  /** decode steps the validator challenged */
  challengedSteps: number;
  /** commitment and reveal bytes sent */
  proofBytes: number;
  /** commitments or reveals the validator refused, with the last reason */
  refused: number;
  lastRefusal?: string;
  /** a verdict against this tab: why it was banned */
  verdict?: string;
  /** from the server's ledger (/v1/ledger/peers/<id>); amounts in wei as decimal strings */
  payTo?: string;
  stake?: string;
  /** the part of `stake` that is the grid operator's bond: slashable, never the visitor's */
  bond?: string;
  verifiedWork?: number;
  pending?: string;
  paid?: string;
  /** lost unvested when a verdict convicted this tab */
  forfeited?: string;
  /** the last stake sent from the visitor's wallet, in words */
  walletStake?: string;
}

export interface DonorView {
  /** Merges `state` into what is shown (top-level fields replace, `download` as a whole) and redraws. */
  update(state: Partial<DonorState>): void;
  /** Adds a sample to the throughput chart; `t` in milliseconds since the epoch (`Date.now()`). */
  pushThroughput(t: number, tokensPerSecond: number): void;
  /** Shows an error until the next one replaces it: a donor must see why the tab stopped helping. */
  showError(message: string): void;
  /** Calls `stake` with the amount (ETH, as typed) when the visitor asks to stake from their wallet. */
  onStake(stake: (amountEth: string) => Promise<unknown>): void;
  /** Calls `choose` with the threads the visitor picks (the page keeps it and reloads: threads start with the engine). */
  onThreadsChosen(choose: (threads: number) => void): void;
  /** Shows the visitor's campaign choice and calls `choose` when they change it. */
  onCampaignOptIn(optedIn: boolean, choose: (on: boolean) => void): void;
  onCampaignLeave(leave: () => void): void;
}

const STATUS_TEXT: Record<DonorStatus, string> = {
  connecting: 'Joining the grid',
  benchmarking: 'Measuring this device',
  downloading: 'Downloading layers',
  loading: 'Loading layers',
  serving: 'Serving requests',
  error: 'Stopped by an error',
};

// A fixed skeleton with no data in it; values go in through textContent only, since peer ids
// and error messages come from the network.
const SKELETON = `
  <header class="donor-header">
    <h1>infermesh donor</h1>
    <span class="donor-status" data-testid="status"></span>
    <span class="donor-status-text" data-testid="status-text"></span>
  </header>
  <p class="donor-error" role="alert" data-testid="error" hidden></p>
  <section class="donor-card">
    <h2>This node</h2>
    <dl>
      <dt>Peer id</dt><dd class="donor-mono" data-testid="peer-id"></dd>
      <dt>Connected peers</dt><dd data-testid="peers"></dd>
      <dt>Coordinator</dt><dd><span data-testid="coordinator"></span> <span class="donor-muted" data-testid="coordinator-lost"></span></dd>
      <dt>Device</dt><dd data-testid="device"></dd>
      <dt>Execution provider</dt><dd data-testid="execution-provider"></dd>
      <dt>ms per layer</dt><dd data-testid="ms-per-layer"></dd>
      <dt>Threads</dt>
      <dd>
        <span data-testid="threads"></span> <span class="donor-muted">of <span data-testid="cores"></span> cores</span>
        <select data-testid="threads-choice" aria-label="threads this tab computes with (applies on reload)" hidden></select>
        <span class="donor-muted" data-testid="threads-note"></span>
      </dd>
      <dt>This tab costs</dt><dd><span data-testid="cost-compute"></span> <span data-testid="cost-memory"></span></dd>
      <dt>Layers</dt><dd><span data-testid="layers"></span> <span class="donor-muted">of <span data-testid="n-layers"></span></span></dd>
    </dl>
  </section>
  <section class="donor-card">
    <h2>Benchmark campaigns</h2>
    <label><input type="checkbox" data-testid="campaign-opt-in"> Also run benchmark campaigns</label>
    <p class="donor-muted">Researchers measure how fast devices like this one run the model. A run waits until this tab has served nothing for a second; its figures are signed by this tab and checked by the grid.</p>
    <div data-testid="campaign-card" hidden>
      <progress data-testid="campaign-progress" max="1" value="0"></progress>
      <dl>
        <dt>Campaign</dt><dd data-testid="campaign-name"></dd>
        <dt>Runs</dt><dd><span data-testid="campaign-done"></span> / <span data-testid="campaign-total"></span> <span class="donor-muted" data-testid="campaign-status"></span></dd>
        <dt>Refused</dt><dd data-testid="campaign-refused"></dd>
        <dt>Note</dt><dd class="donor-muted" data-testid="campaign-note"></dd>
      </dl>
      <button type="button" data-testid="campaign-leave">Leave this campaign</button>
    </div>
  </section>
  <section class="donor-card">
    <h2>Download</h2>
    <progress data-testid="download-progress" max="1" value="0"></progress>
    <dl>
      <dt>Pieces verified</dt><dd><span data-testid="download-verified"></span> / <span data-testid="download-total"></span></dd>
      <dt>Resumed from this browser</dt><dd data-testid="download-resumed"></dd>
      <dt>From peers</dt><dd data-testid="download-from-peers"></dd>
      <dt>From the web seed</dt><dd data-testid="download-from-web-seed"></dd>
      <dt>Bad pieces</dt><dd data-testid="download-bad-pieces"></dd>
      <dt>Dropped peers</dt><dd><span data-testid="download-dropped"></span><ul class="donor-mono" data-testid="download-dropped-peers"></ul></dd>
      <dt>Downloaded</dt><dd data-testid="download-bytes"></dd>
    </dl>
  </section>
  <section class="donor-card">
    <h2>Serving</h2>
    <dl>
      <dt>Requests served</dt><dd data-testid="requests-served"></dd>
      <dt>Tokens served</dt><dd data-testid="tokens-served"></dd>
      <dt>Tokens/s</dt><dd data-testid="tokens-per-second"></dd>
    </dl>
    <div class="donor-chart" data-testid="throughput-chart"></div>
  </section>
  <section class="donor-card">
    <h2>Verification</h2>
    <dl>
      <dt>Requests committed</dt><dd data-testid="trust-committed"></dd>
      <dt>Steps challenged</dt><dd data-testid="trust-challenged"></dd>
      <dt>Proof bytes sent</dt><dd data-testid="trust-proof-bytes"></dd>
      <dt>Refused by the validator</dt><dd><span data-testid="trust-refused"></span> <span class="donor-muted" data-testid="trust-last-refusal"></span></dd>
      <dt>Verdict</dt><dd data-testid="trust-verdict"></dd>
      <dt>Payout address</dt><dd class="donor-mono" data-testid="ledger-pay-to"></dd>
      <dt>Stake</dt><dd data-testid="ledger-stake"></dd>
      <dt>Verified work (layer·tokens)</dt><dd data-testid="ledger-verified-work"></dd>
      <dt>Earnings pending (vesting)</dt><dd data-testid="ledger-pending"></dd>
      <dt>Earnings paid</dt><dd data-testid="ledger-paid"></dd>
      <dt>Earnings forfeited</dt><dd data-testid="ledger-forfeited"></dd>
      <dt>Stake from your wallet</dt>
      <dd>
        <form data-testid="stake-form"><input data-testid="stake-amount" name="amount" value="0.1" size="6" inputmode="decimal" aria-label="ETH to stake"> ETH <button type="submit" data-testid="stake-button">Stake</button></form>
        <span class="donor-muted" data-testid="stake-result"></span>
      </dd>
    </dl>
  </section>
`;

const formatBytes = (bytes: number) => {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
};

/** Wei (a decimal string) as ETH with up to 9 decimals; exact, no float rounding of large amounts. */
const formatEth = (wei: string | undefined) => {
  if (wei === undefined) return undefined;
  const v = BigInt(wei);
  const whole = v / 10n ** 18n;
  const frac = (v % 10n ** 18n).toString().padStart(18, '0').slice(0, 9).replace(/0+$/, '');
  return `${whole}${frac ? `.${frac}` : ''} ETH`;
};

export function createDonorView(root: HTMLElement): DonorView {
  root.classList.add('donor');
  root.innerHTML = SKELETON;
  // Every id asked for is in SKELETON above, so the lookup cannot miss.
  const field = <T extends HTMLElement = HTMLElement>(testId: string) => root.querySelector<T>(`[data-testid="${testId}"]`)!;
  // Only what changed is written: a page whose text is set again, even to the same words, is
  // laid out and painted again, and a tab left open would redraw every field on every tick.
  const set = (testId: string, text: string | number | undefined) => {
    const el = field(testId);
    const next = text === undefined ? '' : String(text);
    if (el.textContent !== next) el.textContent = next;
  };
  const mark = (testId: string, key: string, value: string) => {
    const el = field(testId);
    if (el.dataset[key] !== value) el.dataset[key] = value;
  };
  const show = (testId: string, shown: boolean) => {
    const el = field(testId);
    if (el.hidden === shown) el.hidden = !shown;
  };
  const progress = field<HTMLProgressElement>('download-progress');
  const error = field('error');
  const dropped = field('download-dropped-peers');
  const chart = createThroughputChart(field('throughput-chart'));

  let state: DonorState = { status: 'connecting', requestsServed: 0, tokensServed: 0, tokensPerSecond: 0, peers: 0 };

  const render = () => {
    if (root.dataset.status !== state.status) root.dataset.status = state.status;
    set('status', state.status);
    set('status-text', STATUS_TEXT[state.status]);
    set('peer-id', state.peerId);
    set('peers', state.peers);
    const c = state.coordinator;
    set('coordinator', c && (c.connected ? `connected${c.rejoins > 0 ? `, rejoined ${c.rejoins}×` : ''}` : 'lost, joining again'));
    set('coordinator-lost', c?.connected === false ? c.lost : undefined);
    set('device', state.device?.label);
    set('execution-provider', state.device?.executionProvider);
    set('ms-per-layer', state.device?.msPerLayer.toFixed(2));
    const th = state.threads;
    set('threads', th?.threads);
    set('cores', th?.cores);
    set('threads-note', th && !th.isolated ? '(one thread: this page is not cross-origin isolated)' : undefined);
    const choice = field<HTMLSelectElement>('threads-choice');
    show('threads-choice', th?.isolated === true);
    if (th?.isolated && choice.options.length !== th.cores) {
      choice.replaceChildren(...Array.from({ length: th.cores }, (_, i) => new Option(`use ${i + 1}`, String(i + 1))));
    }
    if (th && choice.value !== String(th.threads)) choice.value = String(th.threads);
    const cost = state.cost;
    set('cost-compute', cost && `computing ${cost.computePercent.toFixed(0)}% of the time,`);
    set('cost-memory', cost && `${formatBytes(cost.memoryBytes)} of memory`);
    if (cost) mark('cost-compute', 'percent', String(cost.computePercent));
    set('layers', state.layers && `${state.layers.start}-${state.layers.end}`);
    const campaign = state.campaign;
    show('campaign-card', campaign !== undefined);
    if (campaign) {
      const bar = field<HTMLProgressElement>('campaign-progress');
      bar.max = Math.max(1, campaign.total);
      bar.value = campaign.done;
      set('campaign-name', campaign.name ? `${campaign.name} (${campaign.id})` : campaign.id);
      set('campaign-done', campaign.done);
      set('campaign-total', campaign.total);
      set('campaign-status', campaign.status);
      set('campaign-refused', campaign.refused);
      set('campaign-note', campaign.note);
      field<HTMLButtonElement>('campaign-leave').disabled = !['starting', 'waiting', 'running'].includes(campaign.status);
    }
    set('n-layers', state.nLayers);

    const d = state.download;
    // max must stay positive: a <progress> with max 0 is invalid and shows as indeterminate.
    const max = Math.max(1, d?.total ?? 1);
    const verified = d?.verified ?? 0;
    if (progress.max !== max) progress.max = max;
    if (progress.value !== verified) progress.value = verified;
    set('download-verified', d?.verified);
    set('download-total', d?.total);
    set('download-resumed', d?.resumed);
    set('download-from-peers', d?.fromPeers);
    set('download-from-web-seed', d?.fromWebSeed);
    set('download-bad-pieces', d?.badPieces);
    set('download-dropped', d?.dropped.length);
    const droppedPeers = d?.dropped ?? [];
    if (droppedPeers.join('\n') !== Array.from(dropped.children, (li) => li.textContent).join('\n')) {
      dropped.replaceChildren(
        ...droppedPeers.map((peer) => {
          const item = document.createElement('li');
          item.textContent = peer;
          return item;
        }),
      );
    }
    set('download-bytes', d && formatBytes(d.bytes));
    if (d) mark('download-bytes', 'value', String(d.bytes));

    set('requests-served', state.requestsServed);
    set('tokens-served', state.tokensServed);
    set('tokens-per-second', state.tokensPerSecond.toFixed(1));

    const t = state.trust;
    set('trust-committed', t?.committed ?? 0);
    set('trust-challenged', t?.challengedSteps ?? 0);
    set('trust-proof-bytes', formatBytes(t?.proofBytes ?? 0));
    set('trust-refused', t?.refused ?? 0);
    set('trust-last-refusal', t?.lastRefusal && `(last: ${t.lastRefusal})`);
    show('trust-last-refusal', !!t?.lastRefusal);
    set('trust-verdict', t?.verdict ?? 'no verdict against this tab');
    mark('trust-verdict', 'banned', String(t?.verdict !== undefined));
    set('ledger-pay-to', t?.payTo);
    // What backs the tab; the grid's bond in it stays the grid's (it is never the visitor's to withdraw).
    set('ledger-stake', t?.stake && `${formatEth(t.stake)}${t.bond && t.bond !== '0' ? ` (${formatEth(t.bond)} of it the grid's bond)` : ''}`);
    set('ledger-verified-work', t?.verifiedWork);
    set('ledger-pending', formatEth(t?.pending));
    set('ledger-paid', formatEth(t?.paid));
    mark('ledger-paid', 'wei', t?.paid ?? '0');
    set('ledger-forfeited', formatEth(t?.forfeited));
    set('stake-result', t?.walletStake && `staked ${t.walletStake}`);
  };
  render();

  return {
    update(next) {
      state = { ...state, ...next };
      render();
    },
    pushThroughput(t, tokensPerSecond) {
      chart.push(t, tokensPerSecond);
    },
    showError(message) {
      error.textContent = message;
      error.hidden = false;
    },
    onCampaignOptIn(optedIn, choose) {
      const box = field<HTMLInputElement>('campaign-opt-in');
      box.checked = optedIn;
      box.addEventListener('change', () => choose(box.checked));
    },
    onCampaignLeave(leave) {
      field<HTMLButtonElement>('campaign-leave').addEventListener('click', leave);
    },
    onThreadsChosen(choose) {
      const choice = field<HTMLSelectElement>('threads-choice');
      choice.addEventListener('change', () => choose(Number(choice.value)));
    },
    onStake(stake) {
      const form = field<HTMLFormElement>('stake-form');
      const button = field<HTMLButtonElement>('stake-button');
      form.addEventListener('submit', (event) => {
        event.preventDefault();
        button.disabled = true;
        // The donor reports a failure itself (showError); the button comes back either way.
        stake(field<HTMLInputElement>('stake-amount').value)
          .catch(() => undefined)
          .finally(() => (button.disabled = false));
      });
    },
  };
}
