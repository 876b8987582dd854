/**
 * What a peer may send the coordinator, as schemas (zod): every field's type and bound, so a
 * message the coordinator acts on is one a well-behaved tab could have sent, and one it refuses
 * is named to the sender field by field. Only what the schemas know is kept (unknown fields are
 * dropped), so nothing a peer invents reaches the registry or the store. What needs the grid's
 * state to check (the package's pieces, whose addresses these are) the coordinator checks after.
 * Used by signaling-server/coordinator/coordinator.ts; the types themselves are in protocol.ts.
 *
 * The other way, a tab checks what its coordinator sends (parseFromCoordinator) by the same
 * means: the coordinator is the one the tab chose, but bytes off a network are not a type.
 */
import { z } from 'zod';
import { InfermeshError } from '../errors.ts';
import type { FromCoordinator, ToCoordinator } from './protocol.ts';

/** A coordinator message that is not JSON, or not one of the messages, or out of bounds. */
export class CoordinatorMessageError extends InfermeshError {
  override name = 'CoordinatorMessageError';
}

/** A tab listens on a circuit through each relay it uses plus a few of its own: 16 is plenty. */
export const MAX_ADDRS = 16;
/** A relayed WebRTC multiaddr with two peer ids and a DNS name is about 200 characters. */
export const MAX_ADDR_CHARS = 512;
/** Peer ids (base58 Ed25519, 52 characters) and package ids (64 hex digits); longer is not one. */
const MAX_ID_CHARS = 128;
/** A tab probes the peers the coordinator introduced to it; a grid this size already needs shards of coordinators. */
export const MAX_RTT_PEERS = 1024;
/**
 * An hour: a bound on timings that only keeps numbers finite. A slow link or device is for
 * placement and routes to weigh, not a reason to turn a tab away.
 */
const MAX_MS = 3_600_000;

const id = z.string().min(1).max(MAX_ID_CHARS);
const count = z.int().min(0);

const device = z.object({
  executionProvider: z.enum(['webgpu', 'wasm', 'cpu']),
  msPerLayer: z.number().positive().max(MAX_MS),
  memoryBytes: z.number().positive().max(Number.MAX_SAFE_INTEGER),
  signature: z.string().min(1).max(256),
  label: z.string().max(256),
  gflops: z.number().positive().max(1e9).optional(),
});

const layers = z.object({ start: count, end: count }).refine((l) => l.start < l.end, 'must be a range: start < end');

const message = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('hello'),
    role: z.enum(['donor', 'client']),
    addrs: z.array(z.string().max(MAX_ADDR_CHARS)).max(MAX_ADDRS),
    device: device.optional(),
    payTo: z.string().regex(/^0x[0-9a-fA-F]{40}$/, 'must be an EVM address (0x and 40 hex digits)').optional(),
    layers: layers.optional(),
  }),
  // Piece keys are checked against the package by the coordinator, which bounds their number.
  z.object({ type: z.literal('have'), packageId: id, pieces: z.array(z.string().max(MAX_ID_CHARS + 32)) }),
  z.object({ type: z.literal('serving'), packageId: id, layers }),
  z.object({
    type: z.literal('rtt'),
    peers: z
      .record(id, z.object({ rttMs: z.number().min(0).max(MAX_MS), throughputMBps: z.number().min(0).optional() }))
      .refine((peers) => Object.keys(peers).length <= MAX_RTT_PEERS, `must measure at most ${MAX_RTT_PEERS} peers`),
  }),
  z.object({
    type: z.literal('stats'),
    // msPerLayer 0 is a timer too coarse for a tiny model's step: kept out of routes, not refused.
    stats: z.object({ requestsServed: count, tokensServed: count, tokensPerSecond: z.number().min(0), msPerLayer: z.number().min(0).max(MAX_MS).optional() }),
  }),
]);

// The schemas must describe the protocol's own types: a drift is a compile error here.
const _describesProtocol: z.ZodType<ToCoordinator> = message;

const peerAddress = { peerId: id, addrs: z.array(z.string().max(MAX_ADDR_CHARS)) };
const fromCoordinator = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('welcome'),
    peerId: id,
    model: z.object({ packageId: id, name: z.string(), nLayers: count, packageUrl: z.string() }),
  }),
  z.object({ type: z.literal('assign'), packageId: id, layers }),
  z.object({
    type: z.literal('peers'),
    peers: z.array(z.object({ ...peerAddress, have: z.array(z.string()), serving: layers.optional() })),
  }),
  z.object({
    type: z.literal('verdict'),
    // A ban for no-shows names no request, and a peer that served nothing yet an empty range.
    verdict: z.object({ peerId: id, requestId: z.string(), layers: z.object({ start: count, end: count }), reason: z.string(), evidenceHash: z.string(), slashTx: z.string().optional() }),
  }),
  z.object({ type: z.literal('error'), name: z.string(), message: z.string() }),
]);
const _describesReplies: z.ZodType<FromCoordinator> = fromCoordinator;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A message's bytes as the message, or a CoordinatorMessageError naming the field at fault. */
export const parseToCoordinator = (bytes: Uint8Array): ToCoordinator => parseWith(message, bytes);

/** What a tab's coordinator sent, or a CoordinatorMessageError naming the field at fault. */
export const parseFromCoordinator = (bytes: Uint8Array): FromCoordinator => parseWith(fromCoordinator, bytes);

function parseWith<T>(schema: z.ZodType<T>, bytes: Uint8Array): T {
  let json: unknown;
  try {
    json = JSON.parse(utf8.decode(bytes));
  } catch (err) {
    throw new CoordinatorMessageError(`not JSON: ${(err as Error).message}`, { cause: err });
  }
  const type = (json as { type?: unknown } | null)?.type;
  if (typeof json !== 'object' || json === null || Array.isArray(json) || typeof type !== 'string') {
    throw new CoordinatorMessageError('a coordinator message is a JSON object with a "type"');
  }
  const parsed = schema.safeParse(json);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  if (issue.path.length === 1 && issue.path[0] === 'type') throw new CoordinatorMessageError(`unknown coordinator message type ${JSON.stringify(type.slice(0, 40))}`);
  throw new CoordinatorMessageError(`${type}: ${issue.path.map(String).join('.')}: ${issue.message}`);
}
