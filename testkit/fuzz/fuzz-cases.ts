/**
 * Every fuzz case, of every family, as one fast-check arbitrary (HTTP 65%, coordinator 20%,
 * trust 10%, relay 5% unless told otherwise), and the context the arbitraries are built from: what the
 * sandboxed server serves (package id and files, onnxruntime-web's files, the web app's pages)
 * and the harness's own peer ids. Each case prints as one line (fc.toStringMethod), so a
 * counterexample fast-check reports can be read as it is. Used by run-fuzz.ts and the fuzz test.
 */
import { readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { MAX_CONTROL_BYTES } from '../../shared/grid/protocol.ts';
import { piecesOfFile } from '../../shared/swarm/package-pieces.ts';
import { coordinatorCaseArbitrary, describeCoordinatorCase } from './coordinator-cases.ts';
import type { CoordinatorCase, CoordinatorContext } from './coordinator-cases.ts';
import { describeHttpCase, httpCaseArbitrary } from './http-cases.ts';
import type { HttpCase, HttpFuzzContext } from './http-cases.ts';
import { describeTrustCase, trustCaseArbitrary } from './trust-cases.ts';
import type { TrustCase, TrustContext } from './trust-cases.ts';
import { describeRelayCase, relayCaseArbitrary } from './relay-cases.ts';
import type { RelayCase } from './relay-cases.ts';
import type { GridSandbox } from './grid-sandbox.ts';

export type FuzzCase = HttpCase | CoordinatorCase | TrustCase | RelayCase;
export type Family = FuzzCase['family'];
export const FAMILIES: readonly Family[] = ['http', 'coordinator', 'trust', 'relay'];

/**
 * Issue 22's mix: most of the surface is HTTP; the libp2p families are fewer but slower cases;
 * the relay's raw WebSocket port takes a few.
 */
export const DEFAULT_MIX: Record<Family, number> = { http: 65, coordinator: 20, trust: 10, relay: 5 };

export interface FuzzContext extends HttpFuzzContext, CoordinatorContext, TrustContext {
  /** the model's hidden width */
  dim: number;
}

const ORT_DIR = fileURLToPath(new URL('../../node_modules/onnxruntime-web/dist/', import.meta.url));
const WEB_DIR = fileURLToPath(new URL('../../dist/web/', import.meta.url));
/** onnxruntime-web ships 20 MB wasm builds; a few small files cover the route without moving gigabytes. */
const MAX_ORT_FILE = 1 << 20;

function files(dir: string): string[] {
  try {
    return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => statSync(join(dir, f)).isFile());
  } catch {
    return [];
  }
}

export function fuzzContext(sandbox: GridSandbox, peerIds: string[]): FuzzContext {
  const { manifest } = sandbox;
  const ortFiles = files(ORT_DIR).filter((f) => statSync(join(ORT_DIR, f)).size <= MAX_ORT_FILE);
  const web = files(WEB_DIR);
  const webPaths = [
    ...web.filter((f) => f.endsWith('index.html')).map((f) => `/${dirname(f)}/`),
    ...web.filter((f) => f.startsWith('assets/') && !f.endsWith('.wasm')).map((f) => `/${f}`),
  ];
  return {
    packageId: manifest.id,
    modelName: manifest.name,
    packageFiles: manifest.files.map((f) => f.path),
    ortFiles: ortFiles.length > 0 ? ortFiles : ['ort.min.js'],
    webPaths: webPaths.length > 0 ? webPaths : ['/donor/'],
    peerIds,
    canaryFromRoot: relative(sandbox.root, sandbox.canaryPath),
    canaryAbsolute: sandbox.canaryPath,
    pieceKeys: manifest.files.flatMap(piecesOfFile),
    nLayers: manifest.config.nLayers,
    dim: manifest.config.dim,
  };
}

export function describeCase(c: FuzzCase): string {
  switch (c.family) {
    case 'http':
      return `http: ${describeHttpCase(c)}`;
    case 'coordinator':
      return `coordinator: ${describeCoordinatorCase(c)}`;
    case 'trust':
      return `trust: ${describeTrustCase(c)}`;
    case 'relay':
      return `relay: ${describeRelayCase(c)}`;
  }
}

const printable = <T extends FuzzCase>(c: T): T => {
  // A copy: constant arbitraries hand out one object many times.
  const copy = { ...c };
  return Object.defineProperty(copy, fc.toStringMethod, { value: () => describeCase(copy), enumerable: false });
};

export function fuzzCaseArbitrary(ctx: FuzzContext, mix: Partial<Record<Family, number>> = DEFAULT_MIX): fc.Arbitrary<FuzzCase> {
  const arbitraries: Record<Family, fc.Arbitrary<FuzzCase>> = {
    http: httpCaseArbitrary(ctx),
    coordinator: coordinatorCaseArbitrary(ctx, MAX_CONTROL_BYTES),
    trust: trustCaseArbitrary(ctx),
    relay: relayCaseArbitrary(),
  };
  const weighted = FAMILIES.filter((f) => (mix[f] ?? 0) > 0).map((f) => ({ weight: mix[f]!, arbitrary: arbitraries[f] }));
  return fc.oneof(...weighted).map(printable);
}
