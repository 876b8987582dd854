/**
 * The donor page: opening it makes this tab part of the grid (web/donor/donor.ts) and shows
 * what it does (web/donor/view.ts). URL switches: `?ep=wasm|webgpu` forces the execution
 * provider; `?fault=corrupt-pieces` is the test-only switch that makes the tab serve corrupted
 * pieces, so the swarm's detection can be shown. `window.donor` exposes the live state to tests.
 */
import { startDonor } from './donor.ts';
import type { Donor } from './donor.ts';
import { createDonorView } from './view.ts';
import type { ExecutionProvider } from '../../shared/engine/api.ts';

declare global {
  interface Window {
    donor?: Donor;
    donorErrors: string[];
  }
}

const params = new URLSearchParams(location.search);
const view = createDonorView(document.getElementById('app')!);
window.donorErrors = [];
const showError = (message: string) => {
  window.donorErrors.push(message);
  view.showError(message);
};

startDonor(
  {
    serverUrl: location.origin,
    executionProvider: (params.get('ep') as ExecutionProvider | null) ?? undefined,
    corruptPieces: params.get('fault') === 'corrupt-pieces',
  },
  { update: (s) => view.update(s), throughput: (t, tps) => view.pushThroughput(t, tps), error: showError },
).then(
  (donor) => (window.donor = donor),
  (err: Error) => {
    view.update({ status: 'error' });
    showError(`${err.name}: ${err.message}`);
  },
);
