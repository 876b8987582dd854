/**
 * connect() as an app uses it (the Node entry): progress events while the client's share of the
 * model downloads, for a progress bar, and an AbortSignal that stops it. No donor is needed to
 * connect, so none joins.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../../cli/open-checkpoint.ts';
import { compileTo, removeTempDirs, STORIES_260K, TOK_512 } from '../../../testkit/model-fixtures.ts';
import { rejection } from '../../../testkit/rejection.ts';
import type { Manifest } from '../../../shared/model/manifest.ts';
import { startGridServer } from '../../../signaling-server/grid-server.ts';
import type { GridServer } from '../../../signaling-server/grid-server.ts';
import { connect } from './node.ts';
import type { DownloadProgress } from './node.ts';

let server: GridServer;
let manifest: Manifest;
beforeAll(async () => {
  const compiled = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'f32');
  manifest = compiled.manifest;
  server = await startGridServer({ host: '127.0.0.1', port: 0, modelDir: compiled.dir });
}, 120_000);
afterAll(async () => {
  await server?.close();
  await removeTempDirs();
});

describe('connect()', () => {
  it("reports the download of the client's share of the model, bytes so far of the total, ending at the total", async () => {
    const seen: DownloadProgress[] = [];
    const client = await connect({ url: server.url, onProgress: (p) => seen.push(p) });
    await client.close();
    const shards = manifest.shards.filter((s) => s.kind !== 'block');
    const paths = new Set([...shards.flatMap((s) => [s.graph, s.data]), manifest.tokenizer.file]);
    const share = manifest.files.filter((f) => paths.has(f.path));
    expect(share).toHaveLength(5);
    const total = seen[0].total;
    expect(total).toBeGreaterThan(0);
    expect(seen.every((p) => p.total === total)).toBe(true);
    for (let i = 1; i < seen.length; i++) expect(seen[i].loaded).toBeGreaterThan(seen[i - 1].loaded);
    expect(seen.at(-1)!.loaded).toBe(total);
    expect(new Set(seen.map((p) => p.file))).toEqual(new Set(share.map((f) => f.path)));
    expect(total).toBe(share.reduce((s, f) => s + f.size, 0));
  });

  it('stops when its signal is aborted: before it starts, and mid-download, with an AbortError', async () => {
    const early = await rejection(connect({ url: server.url, signal: AbortSignal.abort() }));
    expect(early.name).toBe('AbortError');
    const controller = new AbortController();
    const mid = await rejection(connect({ url: server.url, signal: controller.signal, onProgress: () => controller.abort() }));
    expect(mid.name).toBe('AbortError');
  });
});
