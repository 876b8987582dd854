/**
 * `infermesh serve` (and `npm start`): the signaling server with its configuration from flags
 * and INFERMESH_* environment variables (signaling-server/config.ts; `--help` lists them).
 * Without --model it serves the CLI's default synthetic model, compiled on first use. State
 * (peers, assignments, requests) goes to grid.sqlite in the data folder. A caller that runs
 * the server in its own command (`infermesh campaign create --serve`) passes a `ready` hook,
 * called once the server is up, before it serves until SIGINT or SIGTERM.
 */
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { UsageError } from '../shared/errors.ts';
import { parseServerConfig } from '../signaling-server/config.ts';
import { reachableBeyondThisMachine } from '../signaling-server/public-url.ts';
import { openKeyStore } from '../signaling-server/api-keys/key-store.ts';
import { openCampaignStore } from '../signaling-server/campaigns/campaign-store.ts';
import { createGatewayKeys } from '../signaling-server/api-keys/gateway-keys.ts';
import { readTlsFiles } from '../signaling-server/tls-files.ts';
import { startGridServer } from '../signaling-server/grid-server.ts';
import type { GridServer } from '../signaling-server/grid-server.ts';
import { openGridStore } from '../signaling-server/store.ts';
import { startGridSettlement } from '../signaling-server/settle/grid-settlement.ts';
import { availableParallelism } from 'node:os';
import { ensureSyntheticPackage } from './compile-command.ts';
import { DEFAULT_MODEL, syntheticPackageDir } from './defaults.ts';
import { createDonorStatus } from './donor-status.ts';
import { startNodeDonor } from './node-donor.ts';
import type { Donor } from '../web/donor/donor.ts';

export interface ServeHooks {
  /**
   * Called once the server is up (its banner printed, its local donors started), before it
   * serves until SIGINT or SIGTERM. If it throws, the server shuts down as on a signal and
   * serveCommand rejects with that error.
   */
  ready?: (server: GridServer) => Promise<void>;
}

export async function serveCommand(argv: string[], hooks: ServeHooks = {}): Promise<void> {
  const parsed = parseServerConfig(argv, process.env);
  if ('help' in parsed) {
    process.stdout.write(parsed.help.endsWith('\n') ? parsed.help : `${parsed.help}\n`);
    return;
  }
  const config = parsed.config;
  // Checked before anything starts: a bad certificate or key is one line, not failed handshakes later.
  const tls = config.tls && readTlsFiles(config.tls);
  await portFree(config.host, config.port);
  if (!existsSync(join(config.webDir, 'donor', 'index.html'))) {
    throw new UsageError(`the web app is not built (no donor/index.html); run \`npm install\` (it builds it) or \`npx vite build\``, { source: config.webDir });
  }
  const { preset, dtype, seed } = DEFAULT_MODEL;
  const modelDir = config.model ?? (await ensureSyntheticPackage(syntheticPackageDir(preset, dtype, seed), DEFAULT_MODEL));
  const store = openGridStore(join(config.dataDir, 'grid.sqlite'));
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const { chain } = config;
  // The local anvil keeps its chain in the data folder beside its ledger: a restart settles on
  // the same contract, stakes and escrows, and pays nothing twice.
  const local = { ledgerPath: join(config.dataDir, 'ledger-local.sqlite'), anvilStateFile: join(config.dataDir, 'anvil-state.json') };
  const settlement =
    chain.mode === 'off'
      ? undefined
      : await startGridSettlement(
          chain.mode === 'rpc'
            ? { rpcUrl: chain.rpcUrl, privateKey: chain.privateKey, contract: chain.contract, treasury: chain.treasury, ledgerPath: join(config.dataDir, 'ledger.sqlite'), rewardHalfLifeMs: config.rewardHalfLifeMs, sponsorCap: config.sponsorCapWei }
            : { ...local, rewardHalfLifeMs: config.rewardHalfLifeMs, sponsorCap: config.sponsorCapWei },
          { log },
        );
  // Beyond this machine the OpenAI API takes keys (infermesh keys create) unless the operator opened it.
  const keyStore = openKeyStore(join(config.dataDir, 'keys.sqlite'));
  const campaigns = openCampaignStore(join(config.dataDir, 'campaigns.sqlite'));
  const keys = createGatewayKeys({ required: reachableBeyondThisMachine(config.host, config.publicUrl) && !config.openGateway }, { keys: keyStore });
  const server = await startGridServer(
    { host: config.host, port: config.port, publicUrl: config.publicUrl, tls, ice: config.ice, modelDir, webDir: config.webDir, maxLayersPerNode: config.maxLayersPerNode },
    { store, settlement, keys, campaigns, log },
  );
  const activeKeys = keyStore.list().filter((k) => k.revokedAt === undefined).length;
  const site = server.publicUrl;
  process.stderr.write(
    [
      `infermesh grid server: ${server.manifest.name} (${server.manifest.config.nLayers} layers, package ${server.manifest.id.slice(0, 12)}…)`,
      `  donate a GPU:              open ${site}donor/ in a browser (Chrome or Edge for WebGPU), on any machine`,
      `  donate a machine's CPU:    npx infermesh donate ${site}`,
      `  OpenAI-compatible API:     ${site}v1/chat/completions (${keys.required ? `API key required: ${activeKeys} active; \`infermesh keys create --data ${config.dataDir}\` makes one` : 'open to whoever reaches it; keys of this grid are metered'})`,
      `  relay:                     ${server.relay.getMultiaddrs().map(String).join(' ')}`,
      `  state:                     ${store.path}`,
      `  settlement:                ${settlement ? `chain ${settlement.chain.chainId}${settlement.chain.local ? ' (local anvil)' : ''}, contract ${settlement.chain.contract}; ledger at ${site}v1/ledger` : 'off'}`,
      ...(config.publicUrl ? [`  listening on:              ${server.url} (pages, API and relay on this one port)`] : []),
      ...(config.ice.stun.length + config.ice.turn.length > 0 ? [`  ICE servers:               ${[...config.ice.stun, ...config.ice.turn].join(' ')}${config.ice.turn.length ? ` (TURN credentials for ${config.ice.turnTtlS / 3600} h each)` : ''}`] : []),
      '',
    ].join('\n'),
  );
  const warning = exposureWarning(config.host, config.publicUrl);
  if (warning) log(warning);
  const donors = await startLocalDonors(config.donors, server, config.dataDir);
  let stop = () => {};
  const stopped = new Promise<void>((resolve) => {
    stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  try {
    await hooks.ready?.(server);
    await stopped;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    process.stderr.write('infermesh grid server: stopping\n');
    await Promise.all(donors.map((d) => d.stop().catch(() => undefined)));
    await server.close();
    await settlement?.close();
    store.close();
    keyStore.close();
    campaigns.close();
  }
}

/**
 * The donors serve starts in its own process (--donors), so a grid answers before any tab
 * joins: they join through the server's loopback origin as any donor does, sharing the cores.
 * One that fails says why and the server goes on (tabs can still join).
 */
async function startLocalDonors(count: number, server: GridServer, dataDir: string): Promise<Donor[]> {
  if (count === 0) return [];
  const threads = Math.max(1, Math.floor(availableParallelism() / count));
  const started = await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const label = count === 1 ? 'local donor' : `local donor ${i + 1}`;
      const status = createDonorStatus(label, { inPlace: false });
      try {
        const relayAddrs = server.relay.getMultiaddrs().map(String);
        return await startNodeDonor({ serverUrl: server.http.localUrl, relayAddrs, threads, payoutKeyFile: join(dataDir, 'donors', `${i + 1}.key`) }, status);
      } catch (err) {
        status.error(`could not start: ${(err as Error).name}: ${(err as Error).message}`);
        return undefined;
      }
    }),
  );
  return started.filter((d): d is Donor => d !== undefined);
}

/**
 * One line when the server listens beyond this machine but advertises no public URL: its pages
 * and relay are then advertised at the listen address, which visitors elsewhere reach only over
 * plain http (no secure context: no WebGPU, no threads) if at all.
 */
export function exposureWarning(host: string, publicUrl: URL | undefined): string | undefined {
  if (publicUrl || !reachableBeyondThisMachine(host, undefined)) return undefined;
  return `warning: listening on ${host} beyond this machine without --public-url: visitors elsewhere need an https:// URL in front of it (a TLS proxy; README, "Run a public grid"), given as --public-url`;
}

/** Refuses a port another process holds, by name, before the server starts anything (a chain, a relay). */
export async function portFree(host: string, port: number): Promise<void> {
  if (port === 0) return;
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'EADDRINUSE' ? new UsageError(`port ${port} on ${host} is in use by another process; pick another (0 = any free) or stop that one`, { source: '--port' }) : new UsageError(`cannot listen on ${host}:${port}: ${err.message}`, { source: '--host' })),
    );
    probe.listen(port, host, () => probe.close(() => resolve()));
  });
}
