/** The worker_threads entry of the Node host (worker/node-host.ts): the same engine on onnxruntime-node's CPU provider. */
import { parentPort } from 'node:worker_threads';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import * as ort from 'onnxruntime-node';
import { createShardEngine } from './engine.ts';
import type { EngineOrt } from './engine.ts';
import { exposeEngine } from './expose.ts';

if (!parentPort) throw new Error('engine.node-worker.ts must run in a worker thread');
exposeEngine(createShardEngine({ ort: ort as unknown as EngineOrt, defaultProviders: ['cpu'] }), nodeEndpoint(parentPort));
