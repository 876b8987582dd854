/** The worker_threads entry of the Node host (worker/node-host.ts): the same engine on onnxruntime-node's CPU provider. */
import { parentPort } from 'node:worker_threads';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import * as ort from 'onnxruntime-node';
import { createShardEngine } from './engine.ts';
import type { EngineOrt } from './engine.ts';
import { exposeEngine } from './expose.ts';
import { runHandshake } from './device/handshake.ts';
import { nodeHost } from './device/node-host.ts';
import { PIPELINE_SESSION_CONFIG } from '../shared/runtime/ort.ts';

if (!parentPort) throw new Error('engine.node-worker.ts must run in a worker thread');
// The same thread settings as the local runner's sessions (see PIPELINE_SESSION_CONFIG).
const sessionOptions = { graphOptimizationLevel: 'all', extra: { session: PIPELINE_SESSION_CONFIG } };
exposeEngine(
  createShardEngine({
    ort: ort as unknown as EngineOrt,
    defaultProviders: ['cpu'],
    sessionOptions,
    handshake: (options) => runHandshake(options, { ort, host: nodeHost() }),
  }),
  nodeEndpoint(parentPort),
);
