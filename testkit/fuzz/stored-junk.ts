/**
 * What the coordinator may keep about a peer, checked on what it hands out: GET /api/peers
 * (devices, stats, RTTs, piece counts) and the 'peers' messages every connected peer receives
 * (addresses and pieces). Numbers are finite numbers, RTTs name peers that exist, a peer's
 * addresses end in its own /p2p/ id, pieces are the package's and no more than it has.
 * Anything else is junk a fuzz message got stored: it costs memory and it travels to every
 * peer. Used by coordinator-run.ts and the runner's peers observer.
 */
import { peerIdFromString } from '@libp2p/peer-id';

export interface JunkRules {
  pieceKeys: ReadonlySet<string>;
  nLayers: number;
  /** peer ids that exist: the registry's, and the harness's own identities */
  knownPeers: ReadonlySet<string>;
}

export interface StoredJunk {
  peerId: string;
  rule: string;
  detail: string;
}

const EPS = ['webgpu', 'wasm', 'cpu'];
const STATS_KEYS = new Set(['requestsServed', 'tokensServed', 'tokensPerSecond', 'msPerLayer']);
const DEVICE_KEYS = new Set(['executionProvider', 'msPerLayer', 'memoryBytes', 'signature', 'label']);

const finite = (v: unknown, min = 0) => typeof v === 'number' && Number.isFinite(v) && v >= min;
const cut = (v: unknown) => {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 120 ? `${text.slice(0, 120)}…(${text.length} chars)` : text;
};

function range(v: unknown, nLayers: number): boolean {
  if (v === undefined || v === null) return true;
  const r = v as { start?: unknown; end?: unknown };
  return Number.isInteger(r.start) && Number.isInteger(r.end) && (r.start as number) >= 0 && (r.end as number) <= nLayers && (r.start as number) < (r.end as number);
}

/** The /api/peers body's problems, for the peers in `only` (all when absent). */
export function auditPeersSnapshot(body: unknown, rules: JunkRules, only?: ReadonlySet<string>): StoredJunk[] {
  const found: StoredJunk[] = [];
  const peers = (body as { peers?: unknown })?.peers;
  if (!Array.isArray(peers)) return [{ peerId: '-', rule: 'shape', detail: `GET /api/peers has no peers list: ${cut(body)}` }];
  const registered = new Set(peers.map((p: { peerId?: unknown }) => String(p?.peerId)));
  for (const p of peers as Record<string, unknown>[]) {
    const peerId = String(p.peerId);
    if (only && !only.has(peerId)) continue;
    const junk = (rule: string, value: unknown) => found.push({ peerId, rule, detail: cut(value) });
    if (p.device !== undefined && p.device !== null) {
      const d = p.device as Record<string, unknown>;
      if (!EPS.includes(d.executionProvider as string)) junk('device.executionProvider', d.executionProvider);
      if (!finite(d.msPerLayer, Number.MIN_VALUE)) junk('device.msPerLayer', d.msPerLayer);
      if (!finite(d.memoryBytes, 1)) junk('device.memoryBytes', d.memoryBytes);
      if (typeof d.signature !== 'string' || typeof d.label !== 'string') junk('device.signature/label', { signature: d.signature, label: d.label });
      const extra = Object.keys(d).filter((k) => !DEVICE_KEYS.has(k));
      if (extra.length > 0) junk('device fields', extra.slice(0, 5));
    }
    if (p.stats !== undefined && p.stats !== null) {
      const s = p.stats as Record<string, unknown>;
      if (typeof s !== 'object' || Array.isArray(s)) junk('stats', s);
      else {
        for (const k of ['requestsServed', 'tokensServed', 'tokensPerSecond']) if (!finite(s[k])) junk(`stats.${k}`, s[k]);
        if (s.msPerLayer !== undefined && !finite(s.msPerLayer, Number.MIN_VALUE)) junk('stats.msPerLayer', s.msPerLayer);
        const extra = Object.keys(s).filter((k) => !STATS_KEYS.has(k));
        if (extra.length > 0) junk('stats fields', `${extra.length} unknown: ${extra.slice(0, 5).join(', ')}`);
      }
    }
    const rtt = (p.rtt ?? {}) as Record<string, unknown>;
    const strangers = Object.keys(rtt).filter((id) => !registered.has(id) && !rules.knownPeers.has(id));
    if (strangers.length > 0) junk('rtt to unknown peers', `${strangers.length}: ${strangers.slice(0, 3).join(', ')}`);
    const badRtt = Object.entries(rtt).filter(([, v]) => !finite(v));
    if (badRtt.length > 0) junk('rtt values', badRtt.slice(0, 3));
    if (!(Number.isInteger(p.pieces) && (p.pieces as number) >= 0 && (p.pieces as number) <= rules.pieceKeys.size)) junk('pieces', p.pieces);
    if (!range(p.assignment, rules.nLayers)) junk('assignment', p.assignment);
    if (!range(p.serving, rules.nLayers)) junk('serving', p.serving);
  }
  return found;
}

/** A 'peers' message's problems: what the coordinator tells every peer about the donors. */
export function auditPeersMessage(message: unknown, rules: JunkRules): StoredJunk[] {
  const found: StoredJunk[] = [];
  const peers = (message as { peers?: unknown })?.peers;
  if (!Array.isArray(peers)) return [{ peerId: '-', rule: 'shape', detail: `a peers message without a list: ${cut(message)}` }];
  for (const p of peers as Record<string, unknown>[]) {
    const peerId = String(p?.peerId);
    const junk = (rule: string, value: unknown) => found.push({ peerId, rule, detail: cut(value) });
    try {
      peerIdFromString(peerId);
    } catch {
      junk('peerId', p?.peerId);
    }
    const addrs = p?.addrs;
    if (!Array.isArray(addrs) || addrs.some((a) => typeof a !== 'string' || !a.endsWith(`/p2p/${peerId}`))) junk('addrs not its own', Array.isArray(addrs) ? addrs.slice(0, 3) : addrs);
    else if (addrs.length > 64) junk('addrs count', addrs.length);
    const have = p?.have;
    if (!Array.isArray(have) || have.length > rules.pieceKeys.size) junk('have count', Array.isArray(have) ? have.length : have);
    else if (have.some((k) => !rules.pieceKeys.has(k as string))) junk('have keys', have.filter((k) => !rules.pieceKeys.has(k as string)).slice(0, 3));
    if (!range(p?.serving, rules.nLayers)) junk('serving', p?.serving);
  }
  return found;
}
