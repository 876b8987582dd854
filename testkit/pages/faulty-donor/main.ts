/**
 * The cheating donor tab (test page, never in the product build): the donor page (web/donor/)
 * on cheating deps chosen by `?fault=`, so the grid's detection can be shown in a real browser.
 * `corrupt-pieces` serves corrupted pieces to the swarm; a stage fault (`other-model`,
 * `q4-weights`, `skip-layer`, `noise:<sigma>`, `replay-old-output`; engine/stage-fault.ts)
 * makes its engine worker serve its layers dishonestly. A campaign fault cheats a benchmark
 * campaign instead (`?campaign=<id>&fault=campaign-repeat`: each result is posted twice;
 * `campaign-forge`: each is posted with its figures made 10× better after signing). A fault that does not parse stops the
 * tab with the error shown, rather than letting it serve honestly unnoticed.
 */
import { openDonorPage } from '../../../web/donor/page.ts';
import { parseStageFault } from '../../engine/stage-fault.ts';
import { corruptingStore } from '../../swarm/corrupting-store.ts';
import { startTestEngineWorker } from '../test-engine.ts';

openDonorPage((params) => {
  const fault = params.get('fault');
  if (fault === null) return {};
  if (fault === 'corrupt-pieces') return { servedStore: corruptingStore };
  if (fault === 'campaign-repeat') return { postCampaignResult: async (signed, send) => (await send(signed), send(signed)) };
  if (fault === 'campaign-forge') {
    return { postCampaignResult: (signed, send) => send({ ...signed, result: { ...signed.result, tokensPerSecond: signed.result.tokensPerSecond * 10, decodeMs: signed.result.decodeMs / 10 } }) };
  }
  const stageFault = parseStageFault(fault);
  return {
    startEngine() {
      const worker = startTestEngineWorker();
      void worker.engine.setFault(stageFault);
      return worker;
    },
  };
});
