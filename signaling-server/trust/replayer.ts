/**
 * The validator's engine: it replays a stage's layer range over the inputs a stage revealed,
 * all steps of a request at once as one prefill (onnxruntime-node, the reference package), so
 * a challenged step costs one session run however many decode steps led up to it. The outputs
 * are compared with the stage's committed fingerprints (shared/trust/fingerprint.ts).
 *
 * Sessions are opened once per layer range and kept: challenges keep landing on the same
 * ranges. A second replay (confirming a failed check before anyone is slashed) runs on a
 * session with another thread count, so a verdict never rests on one summation order.
 */
import * as ort from 'onnxruntime-node';
import type { Manifest } from '../../shared/model/manifest.ts';
import { createStage } from '../../shared/runtime/stage.ts';
import type { LayerRange, Stage } from '../../shared/runtime/stage.ts';
import { InfermeshError, UsageError } from '../../shared/errors.ts';
import { openStageSession } from '../../worker/node/local-package.ts';

export interface ReplayInput {
  /** the stage's input hidden states of steps 0..n in order, each [rows × width] */
  steps: Float32Array[];
}

export interface Replayer {
  /**
   * Runs `layers` over every step's input as one prefill starting at position 0 and returns
   * the output rows of each step, in order. `pass` 2 uses the confirming session.
   */
  replay(layers: LayerRange, input: ReplayInput, pass?: 1 | 2): Promise<Float32Array[]>;
  close(): Promise<void>;
}

/** A replay asked of a replayer that was closed (the server is shutting down); the job stays owed. */
export class ReplayerClosedError extends InfermeshError {
  override name = 'ReplayerClosedError';
}

/** The refusal of a replay asked after close(), in-process or in the replayer's thread. */
export const replayerClosed = () => Promise.reject(new ReplayerClosedError('the replayer is closed (the server is shutting down)'));

export interface ReplayerOptions {
  /** the package directory the grid serves */
  dir: string;
  manifest: Manifest;
}

/** Threads of the confirming replay: one, so its sums run in another order than the first pass's. */
const CONFIRM_THREADS = 1;

export function createReplayer(options: ReplayerOptions): Replayer {
  const { dir, manifest } = options;
  const { config } = manifest;
  const stages = new Map<string, Promise<Stage>>();
  let replays = 0;

  function stageFor(layers: LayerRange, pass: 1 | 2): Promise<Stage> {
    const key = `${layers.start}-${layers.end}/${pass}`;
    let stage = stages.get(key);
    if (!stage) {
      stage = openStageSession(dir, manifest, layers, { threads: pass === 2 ? CONFIRM_THREADS : undefined }).then((session) =>
        createStage({ config, layers, session, limits: { idleTimeoutMs: 60_000, maxCacheBytes: 1 << 30 } }, { ort }),
      );
      stage.catch(() => stages.delete(key));
      stages.set(key, stage);
    }
    return stage;
  }

  async function replay(layers: LayerRange, input: ReplayInput, pass: 1 | 2): Promise<Float32Array[]> {
    if (layers.start < 0 || layers.end > config.nLayers || layers.end <= layers.start) {
      throw new UsageError(`layers ${layers.start}..${layers.end - 1} are not a range of this ${config.nLayers}-layer model`);
    }
    const rowsOf = input.steps.map((s) => {
      if (s.length === 0 || s.length % config.dim !== 0) throw new UsageError(`a replayed step must hold whole rows of ${config.dim} values, got ${s.length}`);
      return s.length / config.dim;
    });
    const total = rowsOf.reduce((a, b) => a + b, 0);
    if (total > config.maxSeqLen) throw new UsageError(`the replay holds ${total} positions, more than the model's context of ${config.maxSeqLen}`);
    const data = new Float32Array(total * config.dim);
    let at = 0;
    for (const s of input.steps) {
      data.set(s, at);
      at += s.length;
    }
    const stage = await stageFor(layers, pass);
    const requestId = `replay-${++replays}`;
    try {
      const { data: out } = await stage.forwardFrame({ requestId, step: 0, position: 0, dims: [1, total, config.dim], data });
      const outputs: Float32Array[] = [];
      let row = 0;
      for (const rows of rowsOf) {
        outputs.push(out.slice(row * config.dim, (row + rows) * config.dim));
        row += rows;
      }
      return outputs;
    } finally {
      stage.end(requestId);
    }
  }

  /** Replays under way: close() lets them finish before it releases their sessions. */
  const running = new Set<Promise<unknown>>();
  let closing: Promise<void> | null = null;

  return {
    replay(layers, input, pass = 1) {
      if (closing) return replayerClosed();
      const job = replay(layers, input, pass);
      running.add(job);
      void job.catch(() => undefined).finally(() => running.delete(job));
      return job;
    },
    close() {
      closing ??= (async () => {
        await Promise.allSettled([...running]);
        const open = [...stages.values()];
        stages.clear();
        await Promise.all(open.map(async (s) => (await s.catch(() => undefined))?.release()));
      })();
      return closing;
    },
  };
}
