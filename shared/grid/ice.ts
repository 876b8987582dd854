/**
 * The RTCConfiguration a grid peer dials with: the STUN/TURN servers the server hands out in
 * /api/info (signaling-server/ice-servers.ts). TURN credentials expire, and a tab stays open for
 * hours: once they are within REFRESH_BEFORE_MS of expiring, the next dial asks /api/info again.
 * Undefined when the server names no servers, so the WebRTC library keeps its defaults.
 */
import type { GridInfo } from './client.ts';

/** How long before the credentials expire they are fetched again. */
const REFRESH_BEFORE_MS = 10 * 60_000;

export function rtcConfiguration(info: Pick<GridInfo, 'iceServers' | 'iceServersValidUntil'>, refetch: () => Promise<Pick<GridInfo, 'iceServers' | 'iceServersValidUntil'>>, now: () => number = Date.now): (() => Promise<RTCConfiguration>) | undefined {
  if (!info.iceServers || info.iceServers.length === 0) return undefined;
  let current = info;
  let pending: Promise<void> | undefined;
  return async () => {
    if (current.iceServersValidUntil !== undefined && now() > current.iceServersValidUntil - REFRESH_BEFORE_MS) {
      pending ??= refetch()
        .then((fresh) => void (current = fresh))
        // A server that cannot be asked now: dial with what there is (STUN and host candidates still work).
        .catch(() => undefined)
        .finally(() => (pending = undefined));
      await pending;
    }
    return { iceServers: current.iceServers ?? [] };
  };
}
