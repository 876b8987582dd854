/**
 * The signaling server's configuration, from its command line and INFERMESH_* environment
 * variables (a flag wins over its variable, a variable over the default), so the same server
 * runs from a terminal, a container or a test. The server's entry point calls
 * parseServerConfig(process.argv.slice(2), process.env); tests hand in their own.
 */
import { Command, CommanderError } from 'commander';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../shared/errors.ts';
import { parsePublicUrl, PublicUrlError, reachableBeyondThisMachine } from './public-url.ts';
import type { TlsFiles } from './tls-files.ts';
import { DEFAULT_TURN_TTL_S, iceUrlProblem } from './ice-servers.ts';
import type { IceConfig } from './ice-servers.ts';

export interface ServerConfig {
  /** address the server binds */
  host: string;
  /** the one port of the app, packages, /v1, /api and the relay (WebSocket at /); 0 = any free */
  port: number;
  /** where the grid is reached from outside (https, or http on loopback); undefined = the listen address */
  publicUrl?: URL;
  /** serve https and wss with this certificate and key (tls-files.ts checks them); undefined = plain http, e.g. behind a TLS proxy */
  tls?: TlsFiles;
  /** STUN and TURN servers handed to every peer's WebRTC dials (ice-servers.ts); none: the WebRTC library's defaults */
  ice: IceConfig;
  /** model package folder; undefined = the synthetic default model, which the server resolves */
  model?: string;
  /** state folder (the SQLite store, the relay's key) */
  dataDir: string;
  /** most layers one node is given; undefined = as many as its memory allows */
  maxLayersPerNode?: number;
  /** the built web app (vite build output) */
  webDir: string;
  /** where stake, vouchers and payouts live: a local anvil the server starts, an EVM chain, or none */
  chain: ChainConfig;
  /** the half-life over which a stage's rewards vest, ms (signaling-server/settle/vesting.ts); 0 = paid whole at once */
  rewardHalfLifeMs: number;
  /** donors the server starts in its own process (cli/node-donor.ts), so a new grid answers before any tab joins; 0 = none */
  donors: number;
  /** the OpenAI gateway takes calls without an API key even though the grid is reachable beyond this machine */
  openGateway: boolean;
  /** wei the operator bonds for donors in all (settle/sponsorship.ts); undefined = its default */
  sponsorCapWei?: bigint;
}

export type ChainConfig =
  | { mode: 'local' }
  | { mode: 'off' }
  | { mode: 'rpc'; rpcUrl: string; privateKey: `0x${string}`; contract?: `0x${string}`; treasury?: `0x${string}` };

export type ParsedServerArgs = { config: ServerConfig } | { help: string };

export interface ServerConfigDeps {
  /** relative paths are resolved against it; default process.cwd() */
  cwd?: string;
  /** default os.homedir() */
  homedir?: () => string;
}

export const DEFAULT_HOST = '127.0.0.1';
/** An unassigned port (IANA) that spells nothing in particular; any free port works. */
export const DEFAULT_PORT = 8470;
export const DEFAULT_WEB_DIR = resolve(fileURLToPath(new URL('../dist/web/', import.meta.url)));

/** Each option's environment variable. */
export const SERVER_ENV = {
  host: 'INFERMESH_HOST',
  port: 'INFERMESH_PORT',
  publicUrl: 'INFERMESH_PUBLIC_URL',
  tlsCert: 'INFERMESH_TLS_CERT',
  tlsKey: 'INFERMESH_TLS_KEY',
  stun: 'INFERMESH_STUN',
  turn: 'INFERMESH_TURN',
  turnSecret: 'INFERMESH_TURN_SECRET',
  model: 'INFERMESH_MODEL',
  data: 'INFERMESH_DATA',
  maxLayersPerNode: 'INFERMESH_MAX_LAYERS_PER_NODE',
  web: 'INFERMESH_WEB',
  chain: 'INFERMESH_CHAIN',
  rpcUrl: 'INFERMESH_RPC_URL',
  chainKey: 'INFERMESH_CHAIN_KEY',
  contract: 'INFERMESH_CONTRACT',
  treasury: 'INFERMESH_TREASURY',
  rewardHalfLife: 'INFERMESH_REWARD_HALF_LIFE',
  donors: 'INFERMESH_DONORS',
  openGateway: 'INFERMESH_OPEN_GATEWAY',
  sponsorCap: 'INFERMESH_SPONSOR_CAP',
} as const;

/** One local donor: `npm start` answers its first request with no browser open. */
export const DEFAULT_DONORS = 1;
/** Each local donor runs an engine thread pool of its own: more than this only makes a machine thrash. */
export const MAX_DONORS = 8;

/** Sixty minutes, as the settlement's REWARD_HALF_LIFE_MS (not imported: config stays free of the chain code). */
export const DEFAULT_REWARD_HALF_LIFE_MINUTES = 60;

type Env = Record<string, string | undefined>;

/** infermesh's cache folder (packages, bench data, server state): $INFERMESH_CACHE, else $XDG_CACHE_HOME/infermesh, else ~/.cache/infermesh. */
export function defaultCacheDir(env: Env, home: () => string = homedir): string {
  return env.INFERMESH_CACHE || join(env.XDG_CACHE_HOME ?? join(home(), '.cache'), 'infermesh');
}

/** Where state lives unless told: `server` in the cache folder. */
export function defaultDataDir(env: Env, home: () => string = homedir): string {
  return join(defaultCacheDir(env, home), 'server');
}

/** Parses the server's arguments (without node and the script) and environment; `--help` returns the help text. */
export function parseServerConfig(argv: readonly string[], env: Env, deps: ServerConfigDeps = {}): ParsedServerArgs {
  const cwd = deps.cwd ?? process.cwd();
  const dataDefault = defaultDataDir(env, deps.homedir);
  let out = '';
  const program = new Command('infermesh-server')
    .description('The infermesh signaling server: libp2p relay, coordinator, model packages, the web app and an OpenAI-compatible API.')
    .exitOverride()
    .configureOutput({ writeOut: (text) => void (out += text), writeErr: () => undefined })
    // A fixed width: the same help in a terminal, a log and a test.
    .configureHelp({ helpWidth: 100 })
    .allowExcessArguments(false)
    .option('--host <address>', `address to listen on [$${SERVER_ENV.host}]`, host('--host'), DEFAULT_HOST)
    .option('--port <n>', `HTTP port, 0 = any free [$${SERVER_ENV.port}]`, port('--port'), DEFAULT_PORT)
    .option('--public-url <url>', `where visitors reach this grid, e.g. https://grid.example.org behind a TLS proxy: pages, API and relay are advertised there [$${SERVER_ENV.publicUrl}]`, publicUrl('--public-url'))
    .option('--tls-cert <file>', `serve https and wss with this PEM certificate (chain), with --tls-key [$${SERVER_ENV.tlsCert}]`, folder('--tls-cert', cwd))
    .option('--tls-key <file>', `the certificate's PEM private key [$${SERVER_ENV.tlsKey}]`, folder('--tls-key', cwd))
    .option('--stun <url>', `a STUN server for every WebRTC dial, repeatable (stun:host:port; the variable comma-separated) [$${SERVER_ENV.stun}]`, iceUrls('--stun', ['stun', 'stuns']), [])
    .option('--turn <url>', `a TURN server for peers behind NATs, repeatable (turn:host:port?transport=udp; the variable comma-separated), with --turn-secret [$${SERVER_ENV.turn}]`, iceUrls('--turn', ['turn', 'turns']), [])
    .option('--turn-secret <secret>', `the TURN servers' shared secret (coturn use-auth-secret): peers get time-limited credentials [$${SERVER_ENV.turnSecret}]`)
    .option('--model <dir>', `model package folder (default: the synthetic default model) [$${SERVER_ENV.model}]`, folder('--model', cwd))
    .option('--data <dir>', `state folder: the grid store, the settlement ledger and the local chain [$${SERVER_ENV.data}]`, folder('--data', cwd), dataDefault)
    .option('--donors <n>', `donors this process runs on this machine's CPU (onnxruntime-node), 0 = none: browser tabs and \`infermesh donate\` add more [$${SERVER_ENV.donors}]`, donorCount('--donors'), DEFAULT_DONORS)
    .option('--open-gateway', `let anyone call the OpenAI API without a key although the grid is reachable beyond this machine (keys: \`infermesh keys create\`; the variable 1 or 0) [$${SERVER_ENV.openGateway}]`)
    .option('--sponsor-cap <eth>', `ETH the operator bonds for donors in all, 0.1 each (the bonds stay the operator's; default 2) [$${SERVER_ENV.sponsorCap}]`, ethAmount('--sponsor-cap'))
    .option('--max-layers-per-node <n>', `most layers one node serves (default: as many as fit) [$${SERVER_ENV.maxLayersPerNode}]`, positiveInteger('--max-layers-per-node'))
    .option('--web <dir>', `built web app folder [$${SERVER_ENV.web}]`, folder('--web', cwd), DEFAULT_WEB_DIR)
    .option('--chain <mode>', `settlement chain when no --rpc-url: local (start anvil, deploy the contract) or off [$${SERVER_ENV.chain}]`, chainMode('--chain'), 'local')
    .option('--rpc-url <url>', `settle on this EVM chain instead of a local anvil [$${SERVER_ENV.rpcUrl}]`, rpcUrl('--rpc-url'))
    .option('--chain-key <hex>', `the operator's private key on --rpc-url's chain [$${SERVER_ENV.chainKey}]`, privateKey('--chain-key'))
    .option('--contract <address>', `a Settlement already deployed there (default: deploy one) [$${SERVER_ENV.contract}]`, address('--contract'))
    .option('--treasury <address>', `where slashed stake goes on --rpc-url's chain (default: the key's address) [$${SERVER_ENV.treasury}]`, address('--treasury'))
    .option('--reward-half-life <minutes>', `rewards vest over time: half of what is unpaid each this many minutes, forfeited on a conviction; 0 = paid whole at once [$${SERVER_ENV.rewardHalfLife}]`, minutes('--reward-half-life'), DEFAULT_REWARD_HALF_LIFE_MINUTES);

  try {
    program.parse([...argv], { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError && err.code === 'commander.helpDisplayed') return { help: out };
    if (err instanceof CommanderError) throw new UsageError(`${err.message.replace(/^error: /, '').replaceAll('\n', ' ')} (run with --help for usage)`, { cause: err });
    throw err;
  }

  const opts = program.opts();
  /** The flag's value; else its variable's, parsed the same way; else the default. */
  const pick = <T>(key: string, flag: string, envName: string, parse: (value: string) => T): T => {
    if (program.getOptionValueSource(key) !== 'cli' && env[envName] !== undefined && env[envName] !== '') {
      return parseEnv(envName, flag, env[envName]!, parse);
    }
    return opts[key] as T;
  };
  const rpc = pick('rpcUrl', '--rpc-url', SERVER_ENV.rpcUrl, rpcUrl('--rpc-url'));
  const key = pick('chainKey', '--chain-key', SERVER_ENV.chainKey, privateKey('--chain-key'));
  if (rpc && !key) throw new UsageError(`--rpc-url needs the operator's key: --chain-key or $${SERVER_ENV.chainKey}`, { source: '--rpc-url' });
  // Read (and checked) even when unused, so a typo is never silently ignored.
  const contract = pick('contract', '--contract', SERVER_ENV.contract, address('--contract'));
  const treasury = pick('treasury', '--treasury', SERVER_ENV.treasury, address('--treasury'));
  const mode = pick('chain', '--chain', SERVER_ENV.chain, chainMode('--chain'));
  const chain: ChainConfig = rpc ? { mode: 'rpc', rpcUrl: rpc, privateKey: key!, contract, treasury } : { mode };
  const certFile = pick('tlsCert', '--tls-cert', SERVER_ENV.tlsCert, folder('--tls-cert', cwd));
  const keyFile = pick('tlsKey', '--tls-key', SERVER_ENV.tlsKey, folder('--tls-key', cwd));
  const stun = pick('stun', '--stun', SERVER_ENV.stun, (v) => v.split(',').reduce<string[]>((all, u) => iceUrls('--stun', ['stun', 'stuns'])(u.trim(), all), []));
  const turn = pick('turn', '--turn', SERVER_ENV.turn, (v) => v.split(',').reduce<string[]>((all, u) => iceUrls('--turn', ['turn', 'turns'])(u.trim(), all), []));
  const turnSecret = pick<string | undefined>('turnSecret', '--turn-secret', SERVER_ENV.turnSecret, (v) => v);
  if (turn.length > 0 && !turnSecret) throw new UsageError(`needs the TURN servers' shared secret: --turn-secret or $${SERVER_ENV.turnSecret} (coturn's static-auth-secret)`, { source: '--turn' });
  if (turnSecret !== undefined && turn.length === 0) throw new UsageError('has no --turn server to be used with', { source: '--turn-secret' });
  if (turnSecret !== undefined && turnSecret.trim() === '') throw new UsageError('must not be empty', { source: '--turn-secret' });
  const listenHost = pick('host', '--host', SERVER_ENV.host, host('--host'));
  const reachedAt = pick('publicUrl', '--public-url', SERVER_ENV.publicUrl, publicUrl('--public-url'));
  const openGateway = pick('openGateway', '--open-gateway', SERVER_ENV.openGateway, openFlag('--open-gateway')) === true;
  const exposed = reachableBeyondThisMachine(listenHost, reachedAt);
  if (chain.mode === 'rpc' && exposed && openGateway) {
    // The OpenAI gateway pays for every call from the operator's escrow: opened to anyone beyond
    // this machine, anyone could spend real money through it.
    throw new UsageError(
      `settling on an external chain while reachable from ${reachedAt ? reachedAt.origin : `${listenHost} (beyond this machine)`} with --open-gateway would let anyone spend the operator's escrow through the OpenAI gateway: drop --open-gateway (callers then need API keys), or use --chain local or off`,
      { source: '--rpc-url' },
    );
  }
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new UsageError(certFile ? `needs its key: --tls-key or $${SERVER_ENV.tlsKey}` : `needs its certificate: --tls-cert or $${SERVER_ENV.tlsCert}`, { source: certFile ? '--tls-cert' : '--tls-key' });
  }
  return {
    config: {
      chain,
      host: listenHost,
      port: pick('port', '--port', SERVER_ENV.port, port('--port')),
      publicUrl: reachedAt,
      tls: certFile && keyFile ? { certFile, keyFile } : undefined,
      ice: { stun, turn, turnSecret, turnTtlS: DEFAULT_TURN_TTL_S },
      model: pick('model', '--model', SERVER_ENV.model, folder('--model', cwd)),
      dataDir: pick('data', '--data', SERVER_ENV.data, folder('--data', cwd)),
      maxLayersPerNode: pick('maxLayersPerNode', '--max-layers-per-node', SERVER_ENV.maxLayersPerNode, positiveInteger('--max-layers-per-node')),
      webDir: pick('web', '--web', SERVER_ENV.web, folder('--web', cwd)),
      donors: pick('donors', '--donors', SERVER_ENV.donors, donorCount('--donors')),
      openGateway,
      sponsorCapWei: pick('sponsorCap', '--sponsor-cap', SERVER_ENV.sponsorCap, ethAmount('--sponsor-cap')),
      rewardHalfLifeMs: pick('rewardHalfLife', '--reward-half-life', SERVER_ENV.rewardHalfLife, minutes('--reward-half-life')) * 60_000,
    },
  };
}

/** Re-labels a bad variable's error with the variable and the flag it stands for. */
function parseEnv<T>(envName: string, flag: string, value: string, parse: (value: string) => T): T {
  try {
    return parse(value);
  } catch (err) {
    if (err instanceof UsageError) throw new UsageError(err.shortMessage, { source: `${envName} (${flag})` });
    throw err;
  }
}

const port = (flag: string) => (value: string) => {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`must be a port from 0 to 65535, got ${JSON.stringify(value)}`, { source: flag });
  return n;
};

const publicUrl = (flag: string) => (value: string): URL => {
  try {
    return parsePublicUrl(value);
  } catch (err) {
    if (err instanceof PublicUrlError) throw new UsageError(err.message, { source: flag });
    throw err;
  }
};

/** A repeatable ICE server URL option: each value checked, collected in order. */
const iceUrls = (flag: string, schemes: readonly string[]) => (value: string, previous: string[] = []): string[] => {
  const problem = iceUrlProblem(value, schemes);
  if (problem) throw new UsageError(problem, { source: flag });
  return [...previous, value];
};

const positiveInteger = (flag: string) => (value: string) => {
  const n = Number(value);
  if (value.trim() === '' || !Number.isSafeInteger(n) || n < 1) throw new UsageError(`must be an integer ≥ 1, got ${JSON.stringify(value)}`, { source: flag });
  return n;
};

/** An amount of ETH (decimal, at most 18 places) as wei. */
const ethAmount = (flag: string) => (value: string): bigint => {
  const m = /^(\d+)(?:\.(\d{1,18}))?$/.exec(value.trim());
  if (!m) throw new UsageError(`must be an amount of ETH such as 2 or 0.5, got ${JSON.stringify(value)}`, { source: flag });
  return BigInt(m[1]) * 10n ** 18n + BigInt((m[2] ?? '').padEnd(18, '0') || '0');
};

/** A switch's variable: 1/true/yes or 0/false/no. */
const openFlag = (flag: string) => (value: string): boolean => {
  if (/^(1|true|yes)$/i.test(value)) return true;
  if (/^(0|false|no)$/i.test(value)) return false;
  throw new UsageError(`must be 1 or 0 (true or false), got ${JSON.stringify(value)}`, { source: flag });
};

const donorCount = (flag: string) => (value: string) => {
  const n = Number(value);
  if (value.trim() === '' || !Number.isSafeInteger(n) || n < 0 || n > MAX_DONORS) throw new UsageError(`must be an integer from 0 to ${MAX_DONORS}, got ${JSON.stringify(value)}`, { source: flag });
  return n;
};

const host = (flag: string) => (value: string) => {
  if (value.trim() === '' || /\s|\//.test(value)) throw new UsageError(`must be a host name or IP address, got ${JSON.stringify(value)}`, { source: flag });
  return value;
};

const folder = (flag: string, cwd: string) => (value: string) => {
  if (value.trim() === '') throw new UsageError('must name a folder', { source: flag });
  return resolve(cwd, value);
};

const minutes = (flag: string) => (value: string | number) => {
  const n = Number(value);
  if (String(value).trim() === '' || !Number.isFinite(n) || n < 0) throw new UsageError(`must be minutes ≥ 0, got ${JSON.stringify(value)}`, { source: flag });
  return n;
};

const chainMode = (flag: string) => (value: string): 'local' | 'off' => {
  if (value !== 'local' && value !== 'off') throw new UsageError(`must be local or off, got ${JSON.stringify(value)}`, { source: flag });
  return value;
};

const rpcUrl = (flag: string) => (value: string) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`must be a JSON-RPC URL (http, https, ws or wss), got ${JSON.stringify(value)}`, { source: flag });
  }
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(url.protocol)) throw new UsageError(`must be an http(s) or ws(s) URL, got ${JSON.stringify(value)}`, { source: flag });
  return value;
};

const privateKey = (flag: string) => (value: string): `0x${string}` => {
  if (!/^0x[0-9a-fA-F]{64}$/.test(value)) throw new UsageError('must be a private key: 0x and 64 hex digits', { source: flag });
  return value as `0x${string}`;
};

const address = (flag: string) => (value: string): `0x${string}` => {
  if (!/^0x[0-9a-fA-F]{40}$/.test(value)) throw new UsageError(`must be an EVM address (0x and 40 hex digits), got ${JSON.stringify(value)}`, { source: flag });
  return value as `0x${string}`;
};
