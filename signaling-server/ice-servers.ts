/**
 * The STUN and TURN servers every WebRTC dial of the grid uses (`serve --stun`, `--turn`,
 * `--turn-secret`), handed to donor tabs and SDK clients in /api/info. TURN credentials are the
 * standard time-limited REST ones a coturn with `use-auth-secret` accepts: the username is the
 * expiry (Unix seconds), the password base64(HMAC-SHA1(secret, username)); each
 * /api/info answer carries fresh ones valid for `turnTtlS`, and says until when.
 */
import { createHmac } from 'node:crypto';

export interface IceConfig {
  /** stun: or stuns: URLs */
  stun: string[];
  /** turn: or turns: URLs */
  turn: string[];
  /** coturn's static-auth-secret; required with `turn` */
  turnSecret?: string;
  /** how long handed-out TURN credentials last, seconds */
  turnTtlS: number;
}

/** Twelve hours: a tab open longer asks /api/info again before it dials (shared/grid/ice.ts). */
export const DEFAULT_TURN_TTL_S = 12 * 3600;

/** What a URL of `schemes` must look like to be used, or why not (undefined: fine). */
export function iceUrlProblem(value: string, schemes: readonly string[]): string | undefined {
  const scheme = /^([a-z]+):/.exec(value)?.[1];
  if (!scheme || !schemes.includes(scheme)) return `must be a ${schemes.map((s) => `${s}:`).join(' or ')} URL (e.g. ${schemes[0]}:turn.example.org:3478), got ${JSON.stringify(value)}`;
  const rest = value.slice(scheme.length + 1).split('?')[0];
  if (!/^[A-Za-z0-9.\-[\]:]+$/.test(rest) || rest.startsWith(':')) return `must name a host (and port) after ${scheme}:, got ${JSON.stringify(value)}`;
  return undefined;
}

/** coturn's REST credentials for `secret`, valid until `expiresAtS` (Unix seconds). */
export function turnCredentials(secret: string, expiresAtS: number): { username: string; credential: string } {
  // The expiry alone, without coturn's optional ":name": node-datachannel passes credentials to
  // libdatachannel inside a turn:user:password@host URL, where a second colon splits them wrongly.
  const username = String(expiresAtS);
  return { username, credential: createHmac('sha1', secret).update(username).digest('base64') };
}

/** The ICE servers for /api/info, with fresh TURN credentials, and until when they hold (ms since the epoch). */
export function iceServersFor(config: IceConfig, nowMs: number = Date.now()): { iceServers: RTCIceServer[]; validUntil?: number } {
  const iceServers: RTCIceServer[] = [];
  if (config.stun.length > 0) iceServers.push({ urls: config.stun });
  if (config.turn.length === 0) return { iceServers };
  const expiresAtS = Math.floor(nowMs / 1000) + config.turnTtlS;
  iceServers.push({ urls: config.turn, ...turnCredentials(config.turnSecret!, expiresAtS) });
  return { iceServers, validUntil: expiresAtS * 1000 };
}
