/**
 * The donor page's wiring: the view (view.ts) over a donor (donor.ts), the URL switches, and
 * `window.donor` / `window.donorErrors` for whoever drives the page (the demo, the tests).
 * `?ep=wasm|webgpu` forces the execution provider and `?payTo=0x…` names the payout address. A
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
  startDonor(
    {
      serverUrl: location.origin,
      executionProvider: (params.get('ep') as ExecutionProvider | null) ?? undefined,
      payTo: params.get('payTo') ?? undefined,
      wallet: () => window.ethereum,
    },
    { update: (s) => view.update(s), throughput: (t, tps) => view.pushThroughput(t, tps), error: showError },
    donorDeps,
  ).then((donor) => {
    window.donor = donor;
    view.onStake((amount) => donor.stakeFromWallet(amount));
  }, fail);
}
