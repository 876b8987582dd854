/**
 * A client peer that stays on the coordinator for the whole fuzz run and reads every 'peers'
 * broadcast: what the coordinator tells all peers about the donors (their addresses and
 * pieces). Junk there (stored-junk.ts) is junk a fuzz case got stored and the server is now
 * spreading. Reconnects after a server restart. Used by fuzz-rig.ts.
 */
import { COORDINATOR_PROTOCOL } from '../../shared/grid/protocol-ids.ts';
import { renderJson } from './json-template.ts';
import { helloMessage } from './coordinator-cases.ts';
import type { FuzzPeer } from './p2p-peers.ts';
import type { WatchedStream } from './p2p-stream.ts';
import { auditPeersMessage } from './stored-junk.ts';
import type { JunkRules, StoredJunk } from './stored-junk.ts';

export interface PeersObserver {
  /** (Re)connects to the relay at `relayAddr`; the old stream, if any, is dropped. */
  connect(relayAddr: string): Promise<void>;
  /** Junk seen since the last call, each (peer, rule) once per run. */
  take(): StoredJunk[];
  stop(): void;
}

export function createPeersObserver(peer: FuzzPeer, rules: JunkRules): PeersObserver {
  let stream: WatchedStream | null = null;
  let read = 0;
  const seen = new Set<string>();
  let fresh: StoredJunk[] = [];
  const onEvent = (s: WatchedStream) => () => {
    if (s !== stream) return;
    for (; read < s.frames.length; read++) {
      let message: { type?: string };
      try {
        message = JSON.parse(new TextDecoder().decode(s.frames[read])) as { type?: string };
      } catch {
        continue;
      }
      if (message?.type !== 'peers') continue;
      for (const junk of auditPeersMessage(message, rules)) {
        const key = `${junk.peerId} ${junk.rule}`;
        if (seen.has(key)) continue;
        seen.add(key);
        fresh.push(junk);
      }
    }
  };
  return {
    async connect(relayAddr) {
      stream?.abort();
      const s = await peer.open(relayAddr, COORDINATOR_PROTOCOL);
      stream = s;
      read = 0;
      s.onEvent(onEvent(s));
      await s.sendFrame(new TextEncoder().encode(renderJson(helloMessage('client'))));
    },
    take() {
      const out = fresh;
      fresh = [];
      return out;
    },
    stop() {
      stream?.abort();
      stream = null;
    },
  };
}
