/**
 * The donor page: opening it makes this tab part of the grid (web/donor/donor.ts) and shows
 * what it does (web/donor/view.ts). URL switches: `?ep=wasm|webgpu` forces the execution
 * provider; `?fault=` is the test-only switch that makes the tab cheat, so the grid's detection
 * can be shown: `corrupt-pieces` serves corrupted pieces to the swarm, and the stage faults
 * (`other-model`, `q4-weights`, `skip-layer`, `noise:<sigma>`, `replay-old-output`;
 * shared/engine/api.ts) make its engine serve its layers dishonestly. A fault that does not
 * parse stops the tab with the error shown, rather than letting it serve honestly unnoticed.
 * `window.donor` exposes the live state to tests. A wallet in the page (`window.ethereum`) can
 * stake for the tab's payout address (web/donor/wallet-stake.ts).
 */
import { startDonor } from './donor.ts';
import type { Donor } from './donor.ts';
import { createDonorView } from './view.ts';
import { parseStageFault } from '../../shared/engine/api.ts';
import type { ExecutionProvider, StageFault } from '../../shared/engine/api.ts';
import type { EIP1193Provider } from 'viem';

declare global {
  interface Window {
    donor?: Donor;
    donorErrors: string[];
    /** a wallet extension's EIP-1193 provider (MetaMask and others), to stake from */
    ethereum?: EIP1193Provider;
  }
}

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

const faultParam = params.get('fault');
let fault: StageFault | undefined;
let faultError: Error | undefined;
try {
  fault = faultParam !== null && faultParam !== 'corrupt-pieces' ? parseStageFault(faultParam) : undefined;
} catch (err) {
  faultError = err as Error;
}

if (faultError) fail(faultError);
else {
  startDonor(
    {
      serverUrl: location.origin,
      executionProvider: (params.get('ep') as ExecutionProvider | null) ?? undefined,
      payTo: params.get('payTo') ?? undefined,
      corruptPieces: faultParam === 'corrupt-pieces',
      fault,
      wallet: () => window.ethereum,
    },
    { update: (s) => view.update(s), throughput: (t, tps) => view.pushThroughput(t, tps), error: showError },
  ).then((donor) => {
    window.donor = donor;
    view.onStake((amount) => donor.stakeFromWallet(amount));
  }, fail);
}
