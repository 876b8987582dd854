/**
 * Everything a fuzz run needs, up and wired: the sandbox folders, the server as a child
 * process, the harness's libp2p identities (a pool for coordinator cases, a few for trust
 * cases) and the peers observer; and runCase, which runs one case of any family, restarting
 * the server first if a case before it took it down, and turns a crash during the case into
 * a finding. The fuzz test drives it through fc.assert; run-fuzz.ts (the bench) drives it with
 * cases it generated itself.
 */
import { rmSync } from 'node:fs';
import { sleep, withDeadline } from './deadline.ts';
import { runCoordinatorCase } from './coordinator-run.ts';
import type { CaseOutcome, Finding } from './findings.ts';
import { fuzzContext } from './fuzz-cases.ts';
import type { Family, FuzzCase, FuzzContext } from './fuzz-cases.ts';
import { prepareGridSandbox } from './grid-sandbox.ts';
import type { GridSandbox } from './grid-sandbox.ts';
import { runHttpCase } from './http-run.ts';
import type { LeakMarkers } from './http-run.ts';
import { connectAll, createFuzzPeer, createPeerPool, StreamOpenError } from './p2p-peers.ts';
import type { FuzzPeer } from './p2p-peers.ts';
import { createPeersObserver } from './peers-observer.ts';
import { startServeProcess } from './serve-process.ts';
import type { ServeProcess } from './serve-process.ts';
import type { JunkRules } from './stored-junk.ts';
import { runTrustCase } from './trust-run.ts';
import { runRelayCase } from './relay-run.ts';

export interface FuzzRigOptions {
  /** identities derive from it, so peer ids repeat from run to run */
  seed: number;
  /** cases that may run at once: the coordinator pool has as many identities */
  concurrency: number;
  /** caps the server's V8 heap: a server that only holds bounded state lives under a small cap, one that leaks dies of it */
  serverHeapMiB?: number;
}

export interface CaseResult extends CaseOutcome {
  family: Family;
  ms: number;
}

export interface FuzzRig {
  readonly server: ServeProcess;
  readonly sandbox: GridSandbox;
  /** what the case arbitraries are built from (fuzz-cases.ts) */
  readonly context: FuzzContext;
  readonly markers: LeakMarkers;
  runCase(c: FuzzCase): Promise<CaseResult>;
  /** Restarts the server (and reconnects the harness's peers) if it is down. */
  ensureServer(): Promise<void>;
  /** junk the peers observer saw in broadcasts since the last call */
  takeObservedJunk(): Finding[];
  close(): Promise<void>;
}

/** Trust identities get banned by their own bad commitments; a few spread the bans. */
const TRUST_IDENTITIES = 4;
/** How long a failed case waits for the exit of a server that may be dying, before blaming the server's answers. */
const EXIT_GRACE_MS = 300;

const lastLines = (text: string, n = 6) => text.trim().split('\n').slice(-n).join(' | ');

export async function startFuzzRig(options: FuzzRigOptions): Promise<FuzzRig> {
  const sandbox = await prepareGridSandbox();
  // A harness that exits without close() (Ctrl-C in the bench) leaves no folders behind either.
  const removeOnExit = () => rmSync(sandbox.root, { recursive: true, force: true });
  process.on('exit', removeOnExit);
  const closers: (() => Promise<unknown> | unknown)[] = [() => process.removeListener('exit', removeOnExit), () => sandbox.remove()];
  const close = async () => {
    for (const c of closers.splice(0).reverse()) await Promise.resolve(c()).catch(() => undefined);
  };
  try {
    const nodeArgs = options.serverHeapMiB ? [`--max-old-space-size=${options.serverHeapMiB}`] : [];
    // No donor in the server's process: the fuzz finds what requests do to the server alone,
    // and its memory ceiling is the server's, not an engine's beside it.
    const server = await startServeProcess({ modelDir: sandbox.modelDir, dataDir: sandbox.dataDir, nodeArgs, donors: 0 });
    closers.push(() => server.stop());
    const [coordinatorPool, trustPool, observerPeer] = await Promise.all([
      // Coordinator cases are a fifth of the mix: half the concurrency in identities keeps them from waiting.
      createPeerPool(Math.max(2, Math.ceil(options.concurrency / 2)), `${options.seed}/coordinator`),
      createPeerPool(TRUST_IDENTITIES, `${options.seed}/trust`),
      createFuzzPeer(`${options.seed}/observer`),
    ]);
    closers.push(() => coordinatorPool.stop(), () => trustPool.stop(), () => withDeadline(Promise.resolve(observerPeer.node.stop()), 10_000, 'stopping the observer'));
    const ids = [...coordinatorPool.peers, ...trustPool.peers].map((p) => p.peerId);
    const context = fuzzContext(sandbox, ids);
    const rules: JunkRules = { pieceKeys: new Set(context.pieceKeys), nLayers: context.nLayers, knownPeers: new Set([...ids, observerPeer.peerId]) };
    const observer = createPeersObserver(observerPeer, rules);
    closers.push(() => observer.stop());
    const everyone: FuzzPeer[] = [observerPeer, ...coordinatorPool.peers, ...trustPool.peers];
    await connectAll(everyone, server.relayAddr);
    await observer.connect(server.relayAddr);
    const markers: LeakMarkers = { canary: sandbox.canary };
    let trustTurn = 0;

    async function ensureServer(): Promise<void> {
      if (server.alive) return;
      await server.restart();
      await connectAll(everyone, server.relayAddr);
      await observer.connect(server.relayAddr).catch(() => undefined);
    }

    async function runFamily(c: FuzzCase): Promise<CaseOutcome> {
      switch (c.family) {
        case 'http':
          return runHttpCase(c, server.port, markers);
        case 'coordinator': {
          const peer = await coordinatorPool.lease();
          try {
            const other = coordinatorPool.peers.find((p) => p !== peer)!.peerId;
            return await runCoordinatorCase(c, { peer, other, relayAddr: server.relayAddr, httpUrl: server.url, rules });
          } finally {
            coordinatorPool.release(peer);
          }
        }
        case 'trust': {
          const turn = trustTurn++;
          const peer = trustPool.peers[turn % TRUST_IDENTITIES];
          const other = trustPool.peers[(turn + 1) % TRUST_IDENTITIES];
          return runTrustCase(c, { peer, other, relayAddr: server.relayAddr, packageId: context.packageId, dim: context.dim });
        }
        case 'relay':
          return runRelayCase(c, server.relayAddr);
      }
    }

    return {
      server,
      sandbox,
      context,
      markers,
      ensureServer,
      async runCase(c) {
        await ensureServer();
        const crashesBefore = server.crashes.length;
        const t0 = performance.now();
        let result: CaseOutcome;
        try {
          result = await runFamily(c);
        } catch (err) {
          const e = err as Error;
          const kind = err instanceof StreamOpenError ? 'dial-failed' : 'no-answer';
          result = { outcome: `harness: ${e.name}`, findings: [{ kind, detail: `${e.name}: ${e.message}` }] };
        }
        if (result.findings.length > 0 && server.alive) await sleep(EXIT_GRACE_MS);
        if (server.crashes.length > crashesBefore || !server.alive) {
          const exit = server.crashes.at(-1);
          const how = exit ? `code ${exit.code}, signal ${exit.signal}` : 'no exit status yet';
          result = { outcome: 'crash', findings: [{ kind: 'crash', detail: `the server exited (${how}) while this case ran: ${lastLines(exit?.stderrTail ?? server.stderrTail())}` }] };
        }
        return { ...result, family: c.family, ms: performance.now() - t0 };
      },
      takeObservedJunk: () => observer.take().map((j) => ({ kind: 'junk-stored' as const, detail: `broadcast to every peer about ${j.peerId}: ${j.rule}: ${j.detail}` })),
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
