/** The server's own profile of a donor's device: the network it comes from, its provider, adapter and speed step. */
import { describe, expect, it } from 'vitest';
import { deviceProfile, networkOf } from './device-profile.ts';

const device = { executionProvider: 'webgpu' as const, msPerLayer: 1, memoryBytes: 1 << 30, signature: 'sig', label: 'Apple M2' };

describe('networkOf', () => {
  it.each([
    ['/ip4/203.0.113.7/tcp/443/wss', '203.0.113.0/24'],
    ['/ip4/127.0.0.1/tcp/8470/ws', 'loopback'],
    ['/ip6/2001:db8:abcd:12::1/tcp/443/wss', '2001:db8:abcd::/48'],
    ['/ip6/2001:db8::1/tcp/443/wss', '2001:db8:0::/48'],
    ['/ip6/::1/tcp/8470/ws', 'loopback'],
    ['/ip6/1:2:3:4:5:6:7:8:9/tcp/1', 'unknown'],
    ['/dns4/example.com/tcp/443/wss', 'unknown'],
    [undefined, 'unknown'],
  ])('%s is %s', (addr, network) => {
    expect(networkOf(addr)).toBe(network);
  });
});

describe('deviceProfile', () => {
  const here = '/ip4/203.0.113.7/tcp/1/ws';
  it('ignores what the tab may change freely (its signature, its offered memory, the host in the network, the label case)', () => {
    const a = deviceProfile(device, here);
    expect(deviceProfile({ ...device, signature: 'other', memoryBytes: 1 << 20, label: ' apple m2 ' }, '/ip4/203.0.113.200/tcp/9/ws').own).toBe(a.own);
  });

  it('tells apart networks, providers, adapters and speeds; a neighbouring speed step is near', () => {
    const a = deviceProfile(device, here);
    expect(deviceProfile(device, '/ip4/203.0.114.7/tcp/1/ws').near).not.toContain(a.own);
    expect(deviceProfile({ ...device, executionProvider: 'wasm' }, here).near).not.toContain(a.own);
    expect(deviceProfile({ ...device, label: 'Apple M3' }, here).near).not.toContain(a.own);
    expect(deviceProfile({ ...device, msPerLayer: 1.3 }, here).near).toContain(a.own);
    expect(deviceProfile({ ...device, msPerLayer: 3 }, here).near).not.toContain(a.own);
  });
});
