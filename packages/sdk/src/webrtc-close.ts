/**
 * In Node, WebRTC is node-datachannel's polyfill, whose RTCPeerConnection.close() closes the
 * native connection but not the data channels made on it. A channel still connecting then (the
 * `init` channel of a dial that failed or was aborted, as @libp2p/webrtc leaves it) keeps its
 * native callbacks registered, and they hold the Node process open after every libp2p node in
 * it has stopped: an app's script that generated and closed its client never exits. Here a peer
 * connection's close() also closes the channels made on it and not yet closed, as a browser's does.
 * Applied once, on import of the SDK's Node entry (node.ts).
 */
import { RTCPeerConnection } from 'node-datachannel/polyfill';

const APPLIED = Symbol.for('infermesh.webrtc-close');
type Channel = ReturnType<RTCPeerConnection['createDataChannel']>;

export function closeChannelsWithConnection(): void {
  const proto = RTCPeerConnection.prototype as RTCPeerConnection & { [APPLIED]?: true };
  if (proto[APPLIED]) return;
  proto[APPLIED] = true;
  const open = new WeakMap<RTCPeerConnection, Set<Channel>>();
  const { createDataChannel, close } = proto;
  proto.createDataChannel = function (this: RTCPeerConnection, ...args: Parameters<RTCPeerConnection['createDataChannel']>) {
    const channel = createDataChannel.apply(this, args);
    const channels = open.get(this) ?? new Set<Channel>();
    open.set(this, channels.add(channel));
    channel.addEventListener('close', () => channels.delete(channel));
    return channel;
  };
  proto.close = function (this: RTCPeerConnection) {
    for (const channel of open.get(this) ?? []) if (channel.readyState !== 'closed') channel.close();
    open.delete(this);
    return close.call(this);
  };
}
