/** GET /api/peers: the whole registry on this machine; on a grid others can reach, no device fingerprints or topology. */
import { describe, expect, it } from 'vitest';
import { peersView } from './peers-view.ts';
import type { PeerRecord } from './registry.ts';

const donor: PeerRecord = {
  peerId: '12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo',
  role: 'donor',
  addrs: ['/ip4/203.0.113.7/tcp/443/wss/p2p/x/p2p-circuit/webrtc'],
  device: { executionProvider: 'webgpu', msPerLayer: 0.4, memoryBytes: 8 << 30, signature: 'ab'.repeat(32), label: 'NVIDIA GeForce RTX 4090' },
  have: new Set(['block-0.onnx#0']),
  assignment: { start: 0, end: 4 },
  serving: { start: 0, end: 4 },
  rtt: new Map([['12D3KooWKnDdG3iXw9eTFijk3EWSunZcFi54Zka4wmtqtt6rPxc8', 12]]),
  stats: { requestsServed: 3, tokensServed: 48, tokensPerSecond: 20 },
  joinedAt: 0,
};

describe('peersView', () => {
  it('on this machine: everything, neighbours and device included', () => {
    const [p] = peersView([1, 1, 1, 1], [donor], { full: true }).peers;
    expect(p).toMatchObject({ peerId: donor.peerId, device: donor.device, rtt: { '12D3KooWKnDdG3iXw9eTFijk3EWSunZcFi54Zka4wmtqtt6rPxc8': 12 }, pieces: 1 });
  });

  it('reachable by others: provider and speed, never signature, adapter, memory, addresses or whom it measured', () => {
    const view = peersView([1, 1, 1, 1], [donor], { full: false });
    const [p] = view.peers;
    expect(p).toEqual({ peerId: donor.peerId, role: 'donor', device: { executionProvider: 'webgpu', msPerLayer: 0.4 }, assignment: donor.assignment, serving: donor.serving, pieces: 1, stats: donor.stats });
    const text = JSON.stringify(view);
    for (const secret of [donor.device!.signature, 'RTX 4090', '203.0.113.7', '12D3KooWKnDdG3iXw9eTFijk3EWSunZcFi54Zka4wmtqtt6rPxc8']) expect(text).not.toContain(secret);
  });
});
