/**
 * A shard engine that cheats: the real engine (worker/engine.ts) opening the graphs a stage
 * fault swaps in (its `shardGraphs` dependency) and with the fault's change to every step's
 * output. The fault is set before a load and holds for that shard; undefined is honest.
 * Node tests use it in-process; the test pages run it in a Web Worker (faulty-engine.worker.ts).
 */
import type { LoadReport } from '../../shared/engine/api.ts';
import { decodeFrame, encodeFrame } from '../../shared/protocol/frame.ts';
import type { HiddenFrame } from '../../shared/protocol/frame.ts';
import { createShardEngine } from '../../worker/engine.ts';
import type { EngineDeps, ExposedShardEngine } from '../../worker/engine.ts';
import type { StageFault } from './stage-fault.ts';
import { createStepFault, faultShard } from './stage-faults.ts';
import type { StepFault } from './stage-faults.ts';

export interface FaultyEngine extends ExposedShardEngine {
  /** the cheat the next load serves with; undefined serves honestly */
  setFault(fault: StageFault | undefined): Promise<void>;
  load(request: Parameters<ExposedShardEngine['load']>[0]): Promise<LoadReport & { fault?: StageFault }>;
}

export function createFaultyEngine(deps: EngineDeps, fault?: StageFault): FaultyEngine {
  let next = fault;
  let stepFault: StepFault | null = null;
  const engine = createShardEngine({ ...deps, shardGraphs: (shard, request) => faultShard(next, shard.manifest, request.layers, shard) });
  return {
    ...engine,
    async setFault(f) {
      next = f;
    },
    async load(request) {
      const serving = next;
      const report = await engine.load(request);
      stepFault = createStepFault(serving);
      return serving ? { ...report, fault: serving } : report;
    },
    async step(bytes) {
      if (!stepFault) return engine.step(bytes);
      // The cheat works on the parsed frame; the honest step behind it takes bytes again.
      const input = decodeFrame(bytes);
      const honest = async (frame: HiddenFrame) => decodeFrame(await engine.step(frame === input ? bytes : encodeFrame(frame)));
      return encodeFrame(await stepFault.forward(input, honest));
    },
    async end(requestId) {
      await engine.end(requestId);
      stepFault?.end(requestId);
    },
  };
}
