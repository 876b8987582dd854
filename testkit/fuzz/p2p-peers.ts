/**
 * The fuzz harness's libp2p identities: Node peers with only what it takes to reach the relay
 * (WebSockets, noise, yamux, identify), each with an Ed25519 key derived from the fuzz seed so
 * peer ids repeat from run to run. A pool lends each to one case at a time: the coordinator
 * keeps one stream per peer (a second replaces the first), so two cases on one identity would
 * answer each other's messages. Trust cases get identities of their own: a bad commitment
 * gets its signer banned, and the coordinator cases must keep being welcomed.
 */
import { createLibp2p } from 'libp2p';
import type { Libp2p } from 'libp2p';
import { webSockets } from '@libp2p/websockets';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { identify } from '@libp2p/identify';
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { multiaddr } from '@multiformats/multiaddr';
import { sha256 } from '@noble/hashes/sha2.js';
import { InfermeshError } from '../../shared/errors.ts';
import { ANSWER_DEADLINE_MS, sleep, withDeadline } from './deadline.ts';
import { watchStream } from './p2p-stream.ts';
import type { WatchedStream } from './p2p-stream.ts';

/** The relay would not connect, or would not open a stream of the protocol. */
export class StreamOpenError extends InfermeshError {
  override name = 'StreamOpenError';
}

/**
 * libp2p refuses more than 5 inbound connections a second from one host (the connection
 * manager's inboundConnectionThreshold), and every harness identity dials from 127.0.0.1:
 * they connect in groups under that rate, once at start and after each server restart.
 */
const CONNECTS_PER_SECOND = 4;

export interface FuzzPeer {
  readonly peerId: string;
  readonly privateKey: PrivateKey;
  readonly node: Libp2p;
  /** Connects to the server's relay (open would too, but not under the relay's rate limit). */
  connect(relayAddr: string): Promise<void>;
  /** Opens a stream of `protocol` to the server's relay (dialling it first if need be). */
  open(relayAddr: string, protocol: string): Promise<WatchedStream>;
}

export async function createFuzzPeer(seed: string): Promise<FuzzPeer> {
  const privateKey = await generateKeyPairFromSeed('Ed25519', sha256(new TextEncoder().encode(seed)));
  const node = await createLibp2p({
    privateKey,
    transports: [webSockets()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify() },
    // The relay listens on 127.0.0.1, which the default gater refuses to dial.
    connectionGater: { denyDialMultiaddr: () => false },
  });
  return {
    peerId: node.peerId.toString(),
    privateKey,
    node,
    async connect(relayAddr) {
      try {
        await withDeadline(node.dial(multiaddr(relayAddr), { signal: AbortSignal.timeout(ANSWER_DEADLINE_MS) }), ANSWER_DEADLINE_MS + 1_000, 'connecting to the relay');
      } catch (err) {
        throw new StreamOpenError(`could not connect to the relay ${relayAddr}: ${(err as Error).name}: ${(err as Error).message}`, { cause: err });
      }
    },
    async open(relayAddr, protocol) {
      try {
        const signal = AbortSignal.timeout(ANSWER_DEADLINE_MS);
        const stream = await withDeadline(node.dialProtocol(multiaddr(relayAddr), protocol, { signal }), ANSWER_DEADLINE_MS + 1_000, `opening ${protocol}`);
        return watchStream(stream);
      } catch (err) {
        throw new StreamOpenError(`could not open ${protocol}: ${(err as Error).name}: ${(err as Error).message}`, { cause: err });
      }
    },
  };
}

/** Connects every peer to the relay, a few a second; a peer that fails dials again when it opens a stream. */
export async function connectAll(peers: readonly FuzzPeer[], relayAddr: string): Promise<void> {
  for (let at = 0; at < peers.length; at += CONNECTS_PER_SECOND) {
    if (at > 0) await sleep(1_050);
    await Promise.all(peers.slice(at, at + CONNECTS_PER_SECOND).map((p) => p.connect(relayAddr).catch(() => undefined)));
  }
}

export interface PeerPool {
  readonly peers: readonly FuzzPeer[];
  /** Waits for a free identity and lends it until `release`. */
  lease(): Promise<FuzzPeer>;
  release(peer: FuzzPeer): void;
  stop(): Promise<void>;
}

export async function createPeerPool(size: number, seed: string): Promise<PeerPool> {
  const peers = await Promise.all(Array.from({ length: size }, (_, i) => createFuzzPeer(`${seed}/${i}`)));
  const free = [...peers];
  const waiting: ((peer: FuzzPeer) => void)[] = [];
  return {
    peers,
    lease: () => {
      const peer = free.shift();
      return peer ? Promise.resolve(peer) : new Promise<FuzzPeer>((take) => waiting.push(take));
    },
    release(peer) {
      const next = waiting.shift();
      if (next) next(peer);
      else free.push(peer);
    },
    async stop() {
      await Promise.all(peers.map((p) => withDeadline(Promise.resolve(p.node.stop()), 10_000, 'stopping a fuzz peer').catch(() => undefined)));
    },
  };
}
