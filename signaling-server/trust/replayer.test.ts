/**
 * Closing the validator's replayer while it replays, in-process and in its worker thread: the
 * running replay finishes with its outputs, and replays asked after close are refused by name.
 * A thread terminated inside an onnxruntime-node call aborted the whole server process
 * ("terminate called after throwing an instance of 'Napi::Error'") when the grid closed while a
 * replay ran; the thread case here is that shutdown.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest } from '../../shared/model/manifest.ts';
import { openCheckpoint } from '../../cli/open-checkpoint.ts';
import { compileTo, removeTempDirs, STORIES_260K, TOK_512 } from '../../testkit/model-fixtures.ts';
import { createReplayer } from './replayer.ts';
import type { Replayer } from './replayer.ts';
import { startReplayerThread } from './replayer-thread.ts';

let pkg: { dir: string; manifest: Manifest };

beforeAll(async () => {
  pkg = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'f32');
});

afterAll(async () => {
  await removeTempDirs();
});

/** A prompt's worth of rows and some decode steps, arbitrary but finite values. */
function steps(dim: number): Float32Array[] {
  const rows = [48, ...Array.from({ length: 24 }, () => 1)];
  let seed = 1;
  return rows.map((r) => Float32Array.from({ length: r * dim }, () => ((seed = (seed * 16807) % 2147483647) / 2147483647 - 0.5) * 2));
}

async function closeWhileReplaying(replayer: Replayer) {
  const { config } = pkg.manifest;
  const input = { steps: steps(config.dim) };
  const layers = { start: 0, end: config.nLayers };
  const reference = await createReplayer(pkg).replay(layers, input);
  const running = replayer.replay(layers, input);
  await replayer.close();
  const outputs = await running;
  expect(outputs).toHaveLength(input.steps.length);
  expect(outputs.map((o) => o.length)).toEqual(reference.map((o) => o.length));
  expect(outputs.at(-1)).toEqual(reference.at(-1));
  await expect(replayer.replay(layers, input)).rejects.toMatchObject({ name: 'ReplayerClosedError' });
  await replayer.close(); // closing twice is harmless
}

describe('closing the replayer while it replays', () => {
  it('in-process: the running replay finishes with its outputs, and a later one is refused by name', { timeout: 30_000 }, async () => {
    await closeWhileReplaying(createReplayer(pkg));
  });

  it('in its thread: the same, and the thread ends without taking the process down', { timeout: 30_000 }, async () => {
    await closeWhileReplaying(startReplayerThread(pkg));
  });
});
