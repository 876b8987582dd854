/**
 * The STUN/TURN servers a grid names reach every peer's WebRTC dials: /api/info carries them
 * with fresh TURN credentials, and two real peers (Node, node-datachannel) dial and answer with
 * that configuration. And through a real coturn: peers held to relayed candidates only (what
 * two tabs behind symmetric NATs are left with) connect with the grid's credentials, on a
 * candidate the TURN server gave, and fail without them. Relaying between real NATs:
 * e2e/nat.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../cli/open-checkpoint.ts';
import { compileTo, removeTempDirs, STORIES_260K, TOK_512 } from '../testkit/model-fixtures.ts';
import { startGridServer } from '../signaling-server/grid-server.ts';
import type { GridServer } from '../signaling-server/grid-server.ts';
import { turnCredentials } from '../signaling-server/ice-servers.ts';
import { createPeerNode, dialDirect, isDirectWebRTC, peerAddress } from '../shared/grid/node.ts';
import type { PeerNode } from '../shared/grid/node.ts';
import { rtcConfiguration } from '../shared/grid/ice.ts';
import { candidatePair, linkKind } from '../shared/grid/link-kind.ts';
import type { GridInfo } from '../shared/grid/client.ts';
import { coturnMissing, startCoturn } from '../testkit/coturn.ts';
import { tempDir } from '../testkit/model-fixtures.ts';

const ICE = { stun: ['stun:127.0.0.1:9'], turn: ['turn:127.0.0.1:9?transport=udp'], turnSecret: 'grid-secret', turnTtlS: 3600 };
let server: GridServer;
const peers: PeerNode[] = [];

beforeAll(async () => {
  const { dir } = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'f32');
  server = await startGridServer({ host: '127.0.0.1', port: 0, modelDir: dir, ice: ICE });
});
afterAll(async () => {
  await Promise.allSettled(peers.map((p) => p.stop()));
  await server?.close();
  await removeTempDirs();
});

describe('a grid’s ICE servers', () => {
  it('are in /api/info, TURN with credentials coturn would take, valid for the TTL', async () => {
    const before = Math.floor(Date.now() / 1000);
    const info = (await (await fetch(new URL('api/info', server.url))).json()) as GridInfo;
    const [stun, turn] = info.iceServers!;
    expect(stun).toEqual({ urls: ICE.stun });
    const expiresAtS = Number(String(turn.username).split(':')[0]);
    expect(expiresAtS - before).toBeGreaterThanOrEqual(ICE.turnTtlS - 1);
    expect(expiresAtS - before).toBeLessThanOrEqual(ICE.turnTtlS + 1);
    expect(turn).toEqual({ urls: ICE.turn, ...turnCredentials(ICE.turnSecret, expiresAtS) });
    expect(info.iceServersValidUntil).toBe(expiresAtS * 1000);
  });

  it('configure both ends of a real WebRTC dial between peers', { timeout: 60_000 }, async () => {
    const info = (await (await fetch(new URL('api/info', server.url))).json()) as GridInfo;
    const used: string[] = [];
    for (const name of ['a', 'b']) {
      const configure = rtcConfiguration(info, async () => info)!;
      peers.push(await createPeerNode({ relayAddrs: info.relayAddrs, rtcConfiguration: async () => (used.push(name), configure()) }));
    }
    const conn = await dialDirect(peers[0], peerAddress(peers[1]));
    expect(isDirectWebRTC(conn)).toBe(true);
    // On one machine the pair is host to host: a direct link, as its route report would say.
    expect(await candidatePair(conn)).toEqual({ local: 'host', remote: 'host' });
    expect(new Set(used)).toEqual(new Set(['a', 'b']));
  });
});

const missing = coturnMissing();
if (missing) console.warn(`e2e/ice-servers.test.ts: skipping the real-TURN case: ${missing}`);

describe.skipIf(missing !== undefined)('a grid’s TURN server (a real coturn on loopback)', () => {
  it('relays a WebRTC link between peers that may use relayed candidates only, with the credentials /api/info hands out, and not without them', { timeout: 90_000 }, async () => {
    const secret = 'turn-secret-for-this-test';
    const coturn = await startCoturn(secret, await tempDir('infermesh-coturn-'));
    const { dir } = await compileTo(await openCheckpoint(STORIES_260K, { tokenizer: TOK_512, seed: 0 }), 'f32');
    const grid = await startGridServer({ host: '127.0.0.1', port: 0, modelDir: dir, ice: { stun: [], turn: [coturn.url], turnSecret: secret, turnTtlS: 600 } });
    const nodes: PeerNode[] = [];
    try {
      const info = (await (await fetch(new URL('api/info', grid.url))).json()) as GridInfo;
      const relayOnly = (iceServers: RTCIceServer[]) => async (): Promise<RTCConfiguration> => ({ iceServers, iceTransportPolicy: 'relay' });
      const pair = async (iceServers: RTCIceServer[]) => {
        const two = await Promise.all([0, 1].map(() => createPeerNode({ relayAddrs: info.relayAddrs, rtcConfiguration: relayOnly(iceServers) })));
        nodes.push(...two);
        return two;
      };
      const [a, b] = await pair(info.iceServers!);
      const relayed = await dialDirect(a, peerAddress(b));
      expect(isDirectWebRTC(relayed)).toBe(true);
      // Its local candidate came from the TURN server: the allocation, or (node-datachannel's
      // libjuice gathers it even under the relay policy) the mapped address the allocation
      // reported, which peers on one machine can reach directly; which pair wins varies from run
      // to run. The link kind follows the pair. Relaying proper, between peers that cannot reach
      // each other, is e2e/nat.test.ts.
      const selected = (await candidatePair(relayed))!;
      expect(['relay', 'srflx']).toContain(selected.local);
      linkKind(relayed);
      await expect.poll(() => linkKind(relayed)).toBe(selected.local === 'relay' || selected.remote === 'relay' ? 'turn' : 'direct');

      const forged = [{ ...info.iceServers![0], credential: turnCredentials('not-the-secret', Number(info.iceServers![0].username)).credential }];
      const [c, d] = await pair(forged);
      await expect(dialDirect(c, peerAddress(d))).rejects.toMatchObject({ name: 'DirectConnectionError' });
    } finally {
      await Promise.allSettled(nodes.map((n) => n.stop()));
      await grid.close();
      coturn.stop();
    }
  });
});
