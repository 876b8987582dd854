/** The registry: a banned stage leaves every route, and neither it nor its device may join again; a donor joining again keeps the range it serves. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../cli/open-checkpoint.ts';
import { compileTo, removeTempDirs, STORIES_260K, TOK_512 } from '../../testkit/model-fixtures.ts';
import { piecesForLayers } from '../../shared/swarm/package-pieces.ts';
import type { Manifest } from '../../shared/model/manifest.ts';
import { deviceProfile } from '../trust/device-profile.ts';
import { createRegistry } from './registry.ts';
import type { BanList } from './registry.ts';
import { openGridStore } from '../store.ts';
import { join } from 'node:path';
import { tempDir } from '../../testkit/model-fixtures.ts';

let manifest: Manifest;
beforeAll(async () => {
  ({ manifest } = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'q4'));
});
afterAll(removeTempDirs);

const device = (msPerLayer: number, signature: string) => ({ executionProvider: 'wasm' as const, msPerLayer, memoryBytes: 1 << 30, signature, label: 'test' });

/** Two donors that each serve the whole model: the faster one is routed first. */
function twoServingDonors(bans?: BanList) {
  const registry = createRegistry({ manifest, bans });
  registry.join('fast', 'donor', [], device(0.5, 'device-a'), 0);
  registry.join('slow', 'donor', [], device(2, 'device-b'), 0);
  registry.place();
  for (const id of ['fast', 'slow']) {
    const peer = registry.peers.get(id)!;
    peer.have = new Set(piecesForLayers(manifest, peer.assignment!));
    registry.serving(id, peer.assignment!);
  }
  return registry;
}

describe('a banned stage', () => {
  it('is routed around from the next route on', () => {
    const registry = twoServingDonors();
    expect(registry.route().hops.map((h) => h.peerId)).toContain('fast');
    registry.ban('fast', 'step 3 does not match the replay');
    expect(registry.route().hops.map((h) => h.peerId)).toEqual(['slow']);
    expect(registry.isBanned('fast')).toBe(true);
  });

  it('may not join again, nor may another peer on the same device', () => {
    const registry = twoServingDonors();
    registry.ban('fast', 'step 3 does not match the replay');
    expect(() => registry.join('fast', 'donor', [], device(0.5, 'device-c'), 1)).toThrow(expect.objectContaining({ name: 'BannedPeerError', message: expect.stringMatching(/this peer was caught serving wrong results.*step 3/) }));
    expect(() => registry.join('new-id', 'donor', [], device(0.5, 'device-a'), 1)).toThrow(expect.objectContaining({ name: 'BannedPeerError', message: expect.stringMatching(/this device was caught/) }));
    expect(registry.join('other', 'donor', [], device(0.5, 'device-d'), 1).peerId).toBe('other');
  });
});

describe('a ban', () => {
  it('survives a restart: a registry on the reopened store still refuses the peer and its device', async () => {
    const path = join(await tempDir(), 'grid.sqlite');
    const before = openGridStore(path);
    twoServingDonors(before.bans).ban('fast', 'step 3 does not match the replay');
    before.close();

    const after = openGridStore(path);
    try {
      const registry = createRegistry({ manifest, bans: after.bans });
      expect(registry.isBanned('fast')).toBe(true);
      expect(() => registry.join('fast', 'donor', [], device(0.5, 'device-c'), 1)).toThrow(expect.objectContaining({ name: 'BannedPeerError', message: expect.stringMatching(/step 3/) }));
      expect(() => registry.join('fresh-id', 'donor', [], device(0.5, 'device-a'), 1)).toThrow(expect.objectContaining({ name: 'BannedPeerError', message: expect.stringMatching(/this device/) }));
      expect(registry.join('slow', 'donor', [], device(2, 'device-b'), 1).peerId).toBe('slow');
      expect(after.bans.all()).toEqual([['fast', 'step 3 does not match the replay'], ['device:device-a', 'step 3 does not match the replay']]);
    } finally {
      after.close();
    }
  });
});

describe('a donor that joins again naming the range it serves', () => {
  it('is served and routed at once, and the next placement leaves it there', () => {
    const registry = twoServingDonors();
    const range = registry.peers.get('slow')!.serving!;
    registry.leave('slow');
    registry.place();
    registry.join('slow', 'donor', [], device(2, 'device-b'), 1, range);
    expect(registry.peers.get('slow')).toMatchObject({ assignment: range, serving: range });
    expect(registry.place()).toEqual([]);
    registry.ban('fast', 'step 3 does not match the replay');
    expect(registry.route().hops.map((h) => h.peerId)).toEqual(['slow']);
  });

  it('a banned one still may not', () => {
    const registry = twoServingDonors();
    const range = registry.peers.get('fast')!.serving!;
    registry.ban('fast', 'step 3 does not match the replay');
    expect(() => registry.join('fast', 'donor', [], device(0.5, 'device-a'), 1, range)).toThrow(expect.objectContaining({ name: 'BannedPeerError' }));
  });
});

describe('a device like a banned one (trust/device-profile.ts)', () => {
  const from = (ip: string) => `/ip4/${ip}/tcp/40000/ws`;
  const cheater = device(0.5, 'device-a');

  it('joins, but is marked for full checks after a restart; other networks and speeds are not', async () => {
    const path = join(await tempDir(), 'grid.sqlite');
    const before = openGridStore(path);
    const first = createRegistry({ manifest, bans: before.bans });
    first.join('cheat', 'donor', [], cheater, 0, undefined, deviceProfile(cheater, from('203.0.113.7')));
    first.ban('cheat', 'step 3 does not match the replay');
    before.close();

    const after = openGridStore(path);
    try {
      const registry = createRegistry({ manifest, bans: after.bans });
      // A new peer id and a new reported signature, from the same network, same adapter, about the same speed.
      const back = { ...cheater, signature: 'device-new', msPerLayer: 0.55 };
      registry.join('back', 'donor', [], back, 1, undefined, deviceProfile(back, from('203.0.113.99')));
      expect(registry.resemblesBanned('back')).toBe(true);
      const elsewhere = { ...back, signature: 'device-x' };
      registry.join('elsewhere', 'donor', [], elsewhere, 1, undefined, deviceProfile(elsewhere, from('198.51.100.4')));
      expect(registry.resemblesBanned('elsewhere')).toBe(false);
      const slower = { ...back, signature: 'device-y', msPerLayer: 2 };
      registry.join('slower', 'donor', [], slower, 1, undefined, deviceProfile(slower, from('203.0.113.99')));
      expect(registry.resemblesBanned('slower')).toBe(false);
      expect(after.bans.all().map(([key]) => key)).toEqual(['cheat', 'device:device-a', `profile:${deviceProfile(cheater, from('203.0.113.7')).own}`]);
    } finally {
      after.close();
    }
  });
});
