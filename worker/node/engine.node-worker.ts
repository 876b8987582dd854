/** The worker_threads entry of the Node host (worker/node/engine-host.ts): the same engine on onnxruntime-node's CPU provider. */
import { parentPort } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import * as ort from 'onnxruntime-node';
import { createShardEngine } from '../engine.ts';
import type { EngineOrt } from '../engine.ts';
import { exposeEngine } from '../expose.ts';
import { runHandshake } from '../device/handshake.ts';
import { nodeHost } from '../device/node-host.ts';
import { PIPELINE_SESSION_OPTIONS } from '../../shared/runtime/ort.ts';
import type { OrtSessionOptions } from '../../shared/runtime/ort.ts';

if (!parentPort) throw new Error('engine.node-worker.ts must run in a worker thread');
// The same settings as the local runner's sessions (PIPELINE_SESSION_OPTIONS), and an explicit
// intra-op thread count: in a worker thread onnxruntime-node otherwise ran the shard's matmuls
// on fewer threads (110m q4 decode 10 ms/token instead of 7.7, bench engine).
// A terminal donor may ask for fewer (`infermesh donate --threads`): set before the first session.
const sessionOptions: OrtSessionOptions = { ...PIPELINE_SESSION_OPTIONS, intraOpNumThreads: availableParallelism() };
exposeEngine(
  createShardEngine({
    ort: ort as unknown as EngineOrt,
    defaultProviders: ['cpu'],
    sessionOptions,
    computeThreads: {
      get: () => sessionOptions.intraOpNumThreads!,
      set: (threads) => void (sessionOptions.intraOpNumThreads = threads),
      cores: availableParallelism(),
      isolated: true,
    },
    handshake: (options) => runHandshake(options, { ort, host: nodeHost() }),
  }),
  nodeEndpoint(parentPort),
);
