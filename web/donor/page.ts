/**
 * The donor page's wiring: the view (view.ts) over a donor (donor.ts), the URL switches, and
 * `window.donor` / `window.donorErrors` for whoever drives the page (the demo, the tests).
 * `?ep=wasm|webgpu` forces the execution provider, `?payTo=0x…` names the payout address and
 * `?campaign=<id>` runs that benchmark campaign between requests (its join link; the page's
 * checkbox opts in to every campaign of the grid's model, kept in localStorage), and
 * `?threads=N` the engine's threads (else the visitor's last choice on the page, kept in
 * localStorage, else half the cores). A
 * wallet in the page (`window.ethereum`) can stake for the tab's payout address
 * (wallet-stake.ts). The test kit's faulty donor page opens the same page on cheating deps.
 */
import { startDonor } from './donor.ts';
import type { Donor, DonorDeps } from './donor.ts';
import { createDonorView } from './view.ts';
import type { ExecutionProvider } from '../../shared/engine/api.ts';
import type { EIP1193Provider } from 'viem';

declare global {
  interface Window {
    donor?: Donor;
    donorErrors: string[];
    /** a wallet extension's EIP-1193 provider (MetaMask and others), to stake from */
    ethereum?: EIP1193Provider;
  }
}

/** Where the visitor's choice of threads is kept. */
const THREADS_KEY = 'infermesh.donor.threads';
/** Where the visitor's opt-in to benchmark campaigns is kept ('on'; off when absent). */
const CAMPAIGNS_KEY = 'infermesh.donor.campaigns';

/** Opens the donor page in this document; `deps` (from the URL) may throw, which stops the tab with the error shown. */
export function openDonorPage(deps: (params: URLSearchParams) => DonorDeps = () => ({})): void {
  const params = new URLSearchParams(location.search);
  const view = createDonorView(document.getElementById('app')!);
  window.donorErrors = [];
  const showError = (message: string) => {
    window.donorErrors.push(message);
    view.showError(message);
  };
  const fail = (err: Error) => {
    view.update({ status: 'error' });
    showError(`${err.name}: ${err.message}`);
  };
  let donorDeps: DonorDeps;
  try {
    donorDeps = deps(params);
  } catch (err) {
    fail(err as Error);
    return;
  }
  const optedIn = () => localStorage.getItem(CAMPAIGNS_KEY) === 'on';
  view.onCampaignOptIn(optedIn(), (on) => {
    if (on) localStorage.setItem(CAMPAIGNS_KEY, 'on');
    else localStorage.removeItem(CAMPAIGNS_KEY);
    window.donor?.setCampaignOptIn(on);
  });
  const threads = params.get('threads') ?? localStorage.getItem(THREADS_KEY);
  view.onThreadsChosen((n) => {
    // Threads start with the engine: the choice is kept and the page reloaded (a URL's ?threads= would override it).
    localStorage.setItem(THREADS_KEY, String(n));
    const url = new URL(location.href);
    url.searchParams.delete('threads');
    location.replace(url);
  });
  startDonor(
    {
      serverUrl: location.origin,
      threads: threads === null ? undefined : Number(threads),
      executionProvider: (params.get('ep') as ExecutionProvider | null) ?? undefined,
      payTo: params.get('payTo') ?? undefined,
      campaign: params.get('campaign') ?? undefined,
      campaigns: optedIn(),
      wallet: () => window.ethereum,
    },
    { update: (s) => view.update(s), throughput: (t, tps) => view.pushThroughput(t, tps), error: showError },
    donorDeps,
  ).then((donor) => {
    window.donor = donor;
    view.onStake((amount) => donor.stakeFromWallet(amount));
    // A choice made while the tab was still joining applies now.
    donor.setCampaignOptIn(optedIn());
    view.onCampaignLeave(() => donor.leaveCampaign());
  }, fail);
}
