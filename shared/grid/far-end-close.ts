/**
 * Closes a direct WebRTC connection as soon as its far end closes it.
 *
 * When a peer closes its RTCPeerConnection (a tab that drops its links, a page that unloads),
 * Chromium tells the other side at once: its SCTP transport goes 'closed' within milliseconds.
 * libp2p, though, closes the connection only when the peer connection's state turns 'failed',
 * which takes ICE consent checks about 16 s (measured in Chromium here: 'disconnected' after
 * 6 s, 'failed' after 16 s). Meanwhile the connection still reads as open, dialDirect reuses it,
 * and a new stream on it never opens: a stage handing frames to a tab that had dropped its links
 * waited for the stream to time out, and the client's replay with it. Aborting the connection
 * when its SCTP transport closes makes the next dial a fresh one.
 */
import type { Libp2p } from 'libp2p';
import type { Connection } from '@libp2p/interface';
import { InfermeshError } from '../errors.ts';

/** The far end of a direct WebRTC connection closed it (its SCTP transport closed). */
export class FarEndClosedError extends InfermeshError {
  override name = 'FarEndClosedError';
}

/** The transport-level state a WebRTC connection exposes (@libp2p/webrtc keeps its RTCPeerConnection on the connection's maConn). */
interface SctpWatch {
  state: string;
  addEventListener(type: 'statechange', listener: () => void): void;
  removeEventListener(type: 'statechange', listener: () => void): void;
}

function sctpOf(connection: Connection): SctpWatch | null {
  const maConn = (connection as unknown as { maConn?: { peerConnection?: { sctp?: SctpWatch | null } } }).maConn;
  return maConn?.peerConnection?.sctp ?? null;
}

/** Watches every connection `node` opens from now on. */
export function closeOnFarEndClose(node: Libp2p): void {
  const onOpen = (event: CustomEvent<Connection>) => {
    const connection = event.detail;
    const sctp = sctpOf(connection);
    if (!sctp) return; // not WebRTC (the relay's WebSocket), or a transport that does not say
    const check = () => {
      if (sctp.state !== 'closed') return;
      sctp.removeEventListener('statechange', check);
      if (connection.status === 'open') connection.abort(new FarEndClosedError(`${connection.remotePeer} closed its WebRTC connection`));
    };
    sctp.addEventListener('statechange', check);
    check();
  };
  node.addEventListener('connection:open', onOpen);
}
