/**
 * A donor's session with the coordinator: one COORDINATOR_PROTOCOL stream over the WebSocket
 * connection to the relay, kept for the tab's life. On the Internet that connection drops (a
 * server restart, a proxy's idle cut, a link that sagged past the relay's ping), and a tab that
 * just stopped would leave the grid one donor short for good. So a lost session is opened again
 * with backoff: the relay is dialled anew (which makes a new relay reservation, so the tab stays
 * dialable), the hello names the range the tab serves, and the coordinator takes it back as
 * served (registry.ts), so nothing is downloaded or loaded twice and its stage, whose peer links
 * never crossed the relay, serves on throughout.
 *
 * A session the coordinator ends on purpose (an ERROR, then the stream closed while the
 * connection stays up) is a refusal: joining again would be refused again, so the tab stops
 * (a late hello aside).
 */
import { lpStream } from '@libp2p/utils';
import type { LengthPrefixedStream } from '@libp2p/utils';
import type { Libp2p } from 'libp2p';
import type { Connection, Stream } from '@libp2p/interface';
import type { Multiaddr } from '@multiformats/multiaddr';
import { InfermeshError } from '../errors.ts';
import { parseFromCoordinator } from './coordinator-messages.ts';
import { relayReservation } from './node.ts';
import { MAX_CONTROL_BYTES } from './protocol.ts';
import { COORDINATOR_PROTOCOL } from './protocol-ids.ts';
import type { FromCoordinator, ToCoordinator } from './protocol.ts';

/** The coordinator ended this tab's session on purpose (it refused something the tab sent). */
export class CoordinatorRefusedError extends InfermeshError {
  override name = 'CoordinatorRefusedError';
}

/** First wait before joining again; doubled per failed try, up to REJOIN_MAX_MS, with jitter. */
const REJOIN_FIRST_MS = 250;
const REJOIN_MAX_MS = 15_000;
/** Refusals a new session may not get: its hello may be in time. */
const RETRIED_REFUSALS: ReadonlySet<string> = new Set(['HelloTimeoutError']);
/** One try at joining (dial the relay, get a reservation, open the stream) gives up after this. */
const JOIN_TIMEOUT_MS = 20_000;

export interface CoordinatorSessionOptions {
  node: Libp2p;
  relayAddr: Multiaddr;
}

export interface CoordinatorSessionHooks {
  /** the hello that opens each session: the first, and each after a loss (with the range served then) */
  hello(): ToCoordinator;
  /** says what every new session must hear after the hello (the pieces held) */
  joined(): Promise<void> | void;
  message(message: FromCoordinator): void;
  /** the session was lost (`lost` names why) and is being opened again, or it is open again (`lost` undefined) */
  connection(state: { connected: boolean; rejoins: number; lost?: string }): void;
  /** the coordinator refused this tab (CoordinatorRefusedError); no session is opened again */
  ended(err: Error): void;
}

export interface CoordinatorSession {
  /** Sends in order; a message sent while the session is down is dropped (the next session starts with hello and `joined`). */
  send(message: ToCoordinator): Promise<void>;
  stop(): void;
}

/** Opens the first session (rejecting if it cannot), then keeps one open until `stop()`. */
export async function openCoordinatorSession(options: CoordinatorSessionOptions, hooks: CoordinatorSessionHooks): Promise<CoordinatorSession> {
  const { node, relayAddr } = options;
  let stream: LengthPrefixedStream<Stream> | undefined;
  /** the connection to the relay the current session rides */
  let relay: Connection | undefined;
  let sending = Promise.resolve();
  let stopped = false;
  let rejoins = 0;
  /** the last ERROR the coordinator sent in this session: a refusal names it */
  let lastError: Extract<FromCoordinator, { type: 'error' }> | undefined;

  const send = (message: ToCoordinator): Promise<void> => {
    const current = stream;
    if (!current) return Promise.resolve();
    // A write on a lost stream fails; the reader sees the loss and joins again.
    sending = sending.then(() => current.write(new TextEncoder().encode(JSON.stringify(message)))).catch(() => undefined);
    return sending;
  };

  async function join(): Promise<void> {
    const signal = AbortSignal.timeout(JOIN_TIMEOUT_MS);
    const connection = await node.dial(relayAddr, { signal });
    // The hello carries this tab's /webrtc addresses: they work once the relay holds a reservation
    // for it, which a new connection makes afresh. Waited for before the stream opens, so the
    // hello follows the stream's opening at once (the coordinator's hello deadline).
    await relayReservation(node, JOIN_TIMEOUT_MS);
    const opened = await connection.newStream(COORDINATOR_PROTOCOL, { signal });
    relay = connection;
    stream = lpStream(opened, { maxDataLength: MAX_CONTROL_BYTES });
    lastError = undefined;
    void read(stream);
    await send(hooks.hello());
    await hooks.joined();
  }

  async function read(current: LengthPrefixedStream<Stream>): Promise<void> {
    try {
      for (;;) {
        const message = parseFromCoordinator((await current.read()).subarray());
        if (message.type === 'error') lastError = message;
        hooks.message(message);
      }
    } catch (err) {
      if (stopped || current !== stream) return;
      stream = undefined;
      if (refused(err as Error)) {
        stopped = true;
        const why = lastError ? `${lastError.name}: ${lastError.message}` : (err as Error).message;
        hooks.ended(new CoordinatorRefusedError(`the coordinator ended this tab's session: ${why}`, { cause: err }));
        return;
      }
      // The connection that lost the session is not trusted with the next one (its muxer may be
      // gone while it still looks open): closed, so the next dial makes a fresh one.
      const lostOn = relay;
      if (lostOn?.status === 'open') void lostOn.close({ signal: AbortSignal.timeout(1_000) }).catch((e: Error) => lostOn.abort(e));
      void rejoin(`${(err as Error).name}: ${(err as Error).message}`);
    }
  }

  /**
   * Refused: the coordinator sent an ERROR and closed the stream in order on a connection still
   * up (a loss resets the stream or drops the connection). A late hello (a tab too busy to say it
   * in time) is not refused for good: joining again may well be in time.
   */
  const refused = (err: Error): boolean =>
    err.name !== 'StreamResetError' && relay?.status === 'open' && lastError !== undefined && !RETRIED_REFUSALS.has(lastError.name);

  async function rejoin(lost: string): Promise<void> {
    hooks.connection({ connected: false, rejoins, lost });
    for (let attempt = 0; !stopped; attempt++) {
      const backoff = Math.min(REJOIN_MAX_MS, REJOIN_FIRST_MS * 2 ** attempt);
      await new Promise((r) => setTimeout(r, backoff * (0.5 + Math.random() / 2)));
      if (stopped) return;
      try {
        await join();
        hooks.connection({ connected: true, rejoins: ++rejoins });
        return;
      } catch (err) {
        stream = undefined;
        hooks.connection({ connected: false, rejoins, lost: `${lost}; joining again failed: ${(err as Error).message}` });
      }
    }
  }

  await join();
  hooks.connection({ connected: true, rejoins });
  return {
    send,
    stop() {
      stopped = true;
      stream = undefined;
    },
  };
}
