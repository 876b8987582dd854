import { describe, expect, it } from 'vitest';
import { rtcConfiguration } from './ice.ts';

const turn = (username: string) => [{ urls: ['turn:turn.example.org:3478'], username, credential: 'c' }];

describe('a peer’s RTCConfiguration', () => {
  it('keeps the WebRTC library’s defaults when the server names no ICE servers', () => {
    expect(rtcConfiguration({}, async () => ({}))).toBeUndefined();
    expect(rtcConfiguration({ iceServers: [] }, async () => ({}))).toBeUndefined();
  });

  it('dials with the servers /api/info named, and asks again once their credentials near expiry', async () => {
    let clock = 0;
    let asked = 0;
    const config = rtcConfiguration({ iceServers: turn('old'), iceServersValidUntil: 3_600_000 }, async () => ({ iceServers: turn(`fresh ${++asked}`), iceServersValidUntil: clock + 3_600_000 }), () => clock)!;
    expect(await config()).toEqual({ iceServers: turn('old') });
    clock = 3_600_000 - 11 * 60_000;
    expect(await config()).toEqual({ iceServers: turn('old') });
    clock = 3_600_000 - 9 * 60_000;
    // two dials at once ask once
    const [a, b] = await Promise.all([config(), config()]);
    expect([a, b, asked]).toEqual([{ iceServers: turn('fresh 1') }, { iceServers: turn('fresh 1') }, 1]);
    expect(await config()).toEqual({ iceServers: turn('fresh 1') });
  });

  it('dials with what it has when the server cannot be asked', async () => {
    const config = rtcConfiguration({ iceServers: turn('old'), iceServersValidUntil: 0 }, async () => Promise.reject(new Error('offline')))!;
    expect(await config()).toEqual({ iceServers: turn('old') });
  });
});
