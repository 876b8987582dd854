/**
 * WebSocket-level keep-alive for the relay's sockets: a ping frame every `intervalMs`, and a
 * socket that has answered no ping for `deadMs` is dropped (ws's own recipe, "How to detect and
 * close broken connections"). A browser answers ping frames in its network stack, without waking
 * the page's JavaScript, so this costs a tab nothing, where a libp2p ping is a new stream
 * negotiated, encrypted and closed on both sides: on an idle 4-tab grid the relay's libp2p pings
 * every 15 s were the one recurring spike of the whole machine's CPU. It finds the sockets
 * that died without a word (a laptop asleep, a network gone); a tab whose JavaScript hangs still
 * answers, and libp2p's slower ping finds it (relay.ts).
 */
export interface HeartbeatSocket {
  ping(): void;
  terminate(): void;
  on(event: 'pong' | 'close', listener: () => void): void;
}

export interface HeartbeatOptions {
  intervalMs: number;
  /** how long a socket may go without answering a ping before it is dropped */
  deadMs: number;
}

export function keepAlive(socket: HeartbeatSocket, options: HeartbeatOptions, now: () => number = Date.now): void {
  let answeredAt = now();
  socket.on('pong', () => {
    answeredAt = now();
  });
  const timer = setInterval(() => {
    if (now() - answeredAt > options.deadMs) {
      clearInterval(timer);
      socket.terminate();
      return;
    }
    try {
      socket.ping();
    } catch {
      // closing already: its 'close' clears the timer
    }
  }, options.intervalMs);
  timer.unref?.();
  socket.on('close', () => clearInterval(timer));
}
