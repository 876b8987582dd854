/**
 * The grid's wire decoders under fuzz: hidden-state frames, stage messages (open, frame, error,
 * end, seal), trust messages, coordinator messages both ways, and piece requests and answers.
 * Each starts from valid encodings made by the product's own encoders and mutates them
 * (mutations.ts).
 */
import fc from 'fast-check';
import { encodeFrame, decodeFrame } from '../../../shared/protocol/frame.ts';
import type { HiddenFrame } from '../../../shared/protocol/frame.ts';
import type { StageOpen } from '../../../shared/grid/stage-wire.ts';
import { decodeStageMessage, encodeEnd, encodeFailure, encodeFrameMessage, encodeOpen, encodeSeal, MSG_END, MSG_ERROR, MSG_FRAME, MSG_OPEN, MSG_SEAL } from '../../../shared/grid/stage-wire.ts';
import { decodeTrustMessage, encodeChallenge, encodeCommit, encodeReceipt, encodeReveal, encodeTrustFailure, MSG_CHALLENGE, MSG_COMMIT, MSG_RECEIPT, MSG_REVEAL, MSG_TRUST_ERROR } from '../../../shared/grid/trust-wire.ts';
import { parseFromCoordinator, parseToCoordinator } from '../../../shared/grid/coordinator-messages.ts';
import { parsePieceAnswer, parsePieceRequest, PIECE_BAD_REQUEST, PIECE_NOT_HELD, PIECE_OK } from '../../../shared/swarm/piece-protocol.ts';
import type { DecoderSpec } from './decoder.ts';
import { mutatedBytes, mutatedJsonBytes } from './mutations.ts';

const PEER = '12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo';
const OTHER = '12D3KooWKnDdG3iXw9eTFijk3EWSunZcFi54Zka4wmtqtt6rPxc8';
const PACKAGE = 'a'.repeat(64);
const ADDR = `/ip4/127.0.0.1/tcp/4001/ws/p2p/${OTHER}/p2p-circuit/webrtc/p2p/${PEER}`;

const hex = (bytes: Uint8Array, max = 24) => `${Buffer.from(bytes.subarray(0, max)).toString('hex')}${bytes.byteLength > max ? `…(${bytes.byteLength} bytes)` : ''}`;
const describeBytes = (bytes: Uint8Array) => `bytes(${bytes.byteLength}) ${hex(bytes)}`;

const frameArbitrary: fc.Arbitrary<HiddenFrame> = fc
  .record({
    requestId: fc.oneof(fc.uuid(), fc.string({ minLength: 1, maxLength: 40 })).filter((s) => new TextEncoder().encode(s).byteLength <= 128),
    step: fc.nat(),
    position: fc.nat(),
    dims: fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 4 }),
  })
  .chain((f) => {
    const count = f.dims.reduce((a, b) => a * b, 1);
    return fc.float32Array({ minLength: count, maxLength: count }).map((data) => ({ ...f, data }));
  });

const frameBytes = frameArbitrary.map(encodeFrame);

const peerAddress = { peerId: PEER, addrs: [ADDR] };
const openMessage = fc.record({
  requestId: fc.uuid(),
  packageId: fc.constant(PACKAGE),
  hops: fc.constant([{ ...peerAddress, layers: { start: 0, end: 2 } }, { peerId: OTHER, addrs: [ADDR], layers: { start: 2, end: 4 } }]),
  client: fc.constant(peerAddress),
});
const failure = fc.record({ requestId: fc.uuid(), name: fc.constantFrom('FrameError', 'StageLostError'), message: fc.string({ maxLength: 40 }), peerId: fc.constant(PEER) });
const hops = fc.array(fc.record({ stageMs: fc.float({ noNaN: true, min: 0, max: 1e4 }), link: fc.constantFrom('relayed' as const, 'direct' as const, 'turn' as const) }), { maxLength: 4 });

const stageMessageBytes = fc.oneof(
  fc.tuple(hops, frameBytes).map(([h, f]) => encodeFrameMessage(h, f)),
  fc.tuple(fc.nat(), fc.uint8Array({ minLength: 64, maxLength: 64 })).map(([steps, seal]) => encodeSeal(steps, seal)),
  openMessage.map((o) => encodeOpen(o as unknown as StageOpen)),
  failure.map(encodeFailure),
  fc.uuid().map(encodeEnd),
);

const commitLike = fc.uint8Array({ minLength: 8, maxLength: 300 });
const reveal = fc
  .record({
    records: fc.array(fc.record({ index: fc.nat({ max: 64 }), record: fc.uint8Array({ maxLength: 64 }), proof: fc.array(fc.uint8Array({ minLength: 32, maxLength: 32 }), { maxLength: 4 }) }), { maxLength: 4 }),
    inputs: fc.array(fc.float32Array({ maxLength: 16 }), { maxLength: 4 }),
  });
const trustMessageBytes = fc.oneof(
  commitLike.map(encodeCommit),
  fc.record({ steps: fc.array(fc.nat({ max: 100 }), { maxLength: 8 }), deadline: fc.nat() }).map(encodeChallenge),
  reveal.map(encodeReveal),
  fc.tuple(fc.uuid(), fc.boolean()).map(([id, ok]) => encodeReceipt(id, ok)),
  fc.constant(encodeTrustFailure(Object.assign(new Error('late'), { name: 'RevealLateError' }))),
);

const layers = fc.integer({ min: 0, max: 11 }).chain((start) => fc.integer({ min: start + 1, max: 12 }).map((end) => ({ start, end })));
const device = { executionProvider: 'wasm', msPerLayer: 0.5, memoryBytes: 1e9, signature: 'f'.repeat(64), label: 'fuzz' };
const toCoordinator = fc.oneof(
  fc.record({ type: fc.constant('hello'), role: fc.constantFrom('donor', 'client'), addrs: fc.constant([ADDR]), device: fc.constant(device), payTo: fc.constant(`0x${'ab'.repeat(20)}`) }),
  fc.record({ type: fc.constant('have'), packageId: fc.constant(PACKAGE), pieces: fc.array(fc.constantFrom('block-0.onnx#0', 'head.onnx.data#3'), { maxLength: 4 }) }),
  fc.record({ type: fc.constant('serving'), packageId: fc.constant(PACKAGE), layers }),
  fc.record({ type: fc.constant('rtt'), peers: fc.constant({ [OTHER]: { rttMs: 12.5, throughputMBps: 40 } }) }),
  fc.record({ type: fc.constant('stats'), stats: fc.record({ requestsServed: fc.nat(), tokensServed: fc.nat(), tokensPerSecond: fc.float({ noNaN: true, min: 0, max: 1e4 }), msPerLayer: fc.float({ noNaN: true, min: 0, max: 100 }) }) }),
);
const fromCoordinator = fc.oneof(
  fc.constant({ type: 'welcome', peerId: PEER, model: { packageId: PACKAGE, name: 'stories260K', nLayers: 5, packageUrl: 'http://127.0.0.1:8470/packages/x/' } }),
  fc.record({ type: fc.constant('assign'), packageId: fc.constant(PACKAGE), layers }),
  fc.record({ type: fc.constant('peers'), peers: fc.array(fc.record({ peerId: fc.constantFrom(PEER, OTHER), addrs: fc.constant([ADDR]), have: fc.constant(['block-0.onnx#0']), serving: layers }), { maxLength: 3 }) }),
  fc.record({ type: fc.constant('verdict'), verdict: fc.record({ peerId: fc.constant(PEER), requestId: fc.uuid(), layers, reason: fc.string({ maxLength: 30 }), evidenceHash: fc.constant('e'.repeat(64)) }) }),
  fc.record({ type: fc.constant('error'), name: fc.constant('BannedPeerError'), message: fc.string({ maxLength: 30 }) }),
);
const pieceRequest = fc.record({ packageId: fc.constant(PACKAGE), piece: fc.constantFrom('block-0.onnx#0', 'head.onnx.data#12', 'tokenizer.bin#0') });

export function wireDecoders(): DecoderSpec<never>[] {
  const specs: DecoderSpec<any, any>[] = [
    {
      name: 'hidden-state frame',
      from: 'a stage stream (STAGE_PROTOCOL): the tensor between stages, in every frame message',
      input: mutatedBytes(frameBytes),
      decode: (bytes) => decodeFrame(bytes, 1 << 20),
      accepted: (f: HiddenFrame) => (f.data.length === f.dims.reduce((a, b) => a * b, 1) ? undefined : `dims [${f.dims}] but ${f.data.length} values`),
      describe: describeBytes,
    },
    {
      name: 'stage message',
      from: 'a stage stream: open, frame, error, end and seal messages from the client or the previous stage',
      input: mutatedBytes(stageMessageBytes, [MSG_OPEN, MSG_FRAME, MSG_ERROR, MSG_END, MSG_SEAL]),
      decode: decodeStageMessage,
      describe: describeBytes,
    },
    {
      name: 'stage message (JSON kinds)',
      from: 'a stage stream: the JSON bodies of open, error and end',
      input: fc.oneof(
        mutatedJsonBytes(openMessage, MSG_OPEN),
        mutatedJsonBytes(failure, MSG_ERROR),
        mutatedJsonBytes(fc.record({ requestId: fc.uuid() }), MSG_END),
      ),
      decode: decodeStageMessage,
      describe: describeBytes,
    },
    {
      name: 'trust message',
      from: 'a trust stream (TRUST_PROTOCOL): commitments, challenges, reveals, receipts and errors between stages and the validator',
      input: fc.oneof(
        mutatedBytes(trustMessageBytes, [MSG_COMMIT, MSG_CHALLENGE, MSG_REVEAL, MSG_RECEIPT, MSG_TRUST_ERROR]),
        mutatedJsonBytes(fc.record({ steps: fc.array(fc.nat({ max: 9 }), { maxLength: 3 }), deadline: fc.nat() }), MSG_CHALLENGE),
        mutatedJsonBytes(fc.record({ requestId: fc.uuid(), accepted: fc.boolean() }), MSG_RECEIPT),
        mutatedJsonBytes(fc.constant({ name: 'RevealLateError', message: 'late' }), MSG_TRUST_ERROR),
      ),
      decode: decodeTrustMessage,
      describe: describeBytes,
    },
    {
      name: 'coordinator message (to the coordinator)',
      from: 'a coordinator stream (COORDINATOR_PROTOCOL): hello, have, serving, rtt and stats from any peer',
      input: mutatedJsonBytes(toCoordinator),
      decode: parseToCoordinator,
      describe: (b) => new TextDecoder().decode(b.subarray(0, 160)),
    },
    {
      name: 'coordinator message (to a tab)',
      from: "a coordinator stream: welcome, assign, peers, verdict and error from the tab's coordinator",
      input: mutatedJsonBytes(fromCoordinator),
      decode: parseFromCoordinator,
      describe: (b) => new TextDecoder().decode(b.subarray(0, 160)),
    },
    {
      name: 'piece request',
      from: 'a pieces stream (PIECES_PROTOCOL): a peer asks for a piece of the model package',
      input: mutatedJsonBytes(pieceRequest),
      // A refusal is an answer to the peer (its reason), not an exception.
      decode: (bytes) => parsePieceRequest(bytes),
      refusedAs: (r: ReturnType<typeof parsePieceRequest>) => (typeof r === 'string' ? 'answered PIECE_BAD_REQUEST' : undefined),
      accepted: (r: ReturnType<typeof parsePieceRequest>) => (typeof r !== 'string' && typeof r.packageId === 'string' && typeof r.piece === 'string' ? undefined : `not a request: ${JSON.stringify(r)}`),
      describe: (b) => new TextDecoder().decode(b.subarray(0, 160)),
    },
    {
      name: 'piece answer',
      from: 'a pieces stream: the answer of the peer asked (ok and the bytes, not held, bad request)',
      input: mutatedBytes(fc.oneof(fc.uint8Array({ maxLength: 64 }).map((b) => Uint8Array.of(PIECE_OK, ...b)), fc.constant(Uint8Array.of(PIECE_NOT_HELD)), fc.constant(Uint8Array.of(PIECE_BAD_REQUEST, 0x6e, 0x6f))), [0, 1, 2, 3, 255]),
      decode: parsePieceAnswer,
      describe: describeBytes,
    },
  ];
  return specs as DecoderSpec<never>[];
}
