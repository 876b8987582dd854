/**
 * The churn tests' donor tab (test page, never in the product build): the honest donor page
 * (web/donor/) with `window.linkFaults`, the faults that need the page's help. The others come
 * from outside (testkit/churn/faults.ts): a closed tab, a killed browser, a frozen page.
 *  - `throttle(ms)`: every frame this stage hands on leaves `ms` later, as over a sagging link
 *    (the delay is added after the engine's step, so it shows in the stage's own hop time);
 *  - `dropLinks()`: every direct WebRTC connection of the tab is cut at once (the relay link to
 *    the server stays, so the tab stays on the grid and can be dialled again);
 *  - `directLinks()`: the tab's open direct WebRTC connections, by peer and connection id.
 */
import { openDonorPage } from '../../../web/donor/page.ts';
import { startEngineWorker } from '../../../web/engine-client.ts';
import { isDirectWebRTC } from '../../../shared/grid/node.ts';

declare global {
  interface Window {
    linkFaults: { throttle(ms: number): void; dropLinks(): number; directLinks(): { peerId: string; id: string }[] };
  }
}

let delayMs = 0;
window.linkFaults = {
  throttle: (ms) => void (delayMs = ms),
  dropLinks() {
    const links = window.donor?.node.getConnections().filter(isDirectWebRTC) ?? [];
    for (const link of links) link.abort(new Error('link dropped by the churn test'));
    return links.length;
  },
  directLinks: () => (window.donor?.node.getConnections().filter(isDirectWebRTC) ?? []).map((c) => ({ peerId: c.remotePeer.toString(), id: c.id })),
};

openDonorPage(() => ({
  startEngine() {
    const worker = startEngineWorker();
    return {
      ...worker,
      async stepTransfer(frame: Uint8Array) {
        const out = await worker.stepTransfer(frame);
        if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
        return out;
      },
    };
  },
}));
