/**
 * A local EVM chain for the coordinator's settlement and for tests: spawns the anvil binary that
 * npm installed (`@foundry-rs/anvil` ships it in a per-platform optional package), waits until it
 * answers JSON-RPC and hands back its URL, chain id and funded dev accounts. The server starts one
 * when no chain URL is configured; every settlement test starts its own on a free port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { defineChain, type Chain, type Hex } from 'viem';
import { privateKeyToAccount, type PrivateKeyAccount } from 'viem/accounts';
import { InfermeshError } from '../../shared/errors.ts';

/** anvil would not start or answer; the message says how to fix it. */
export class AnvilError extends InfermeshError {
  override name = 'AnvilError';
}

export interface StartAnvilOptions {
  /** 0 (default): anvil binds a free port and we read it from its banner */
  port?: number;
  /** seconds per block; absent: a block per transaction (instant mining) */
  blockTime?: number;
  chainId?: number;
  /** wei per gas; 0 makes transactions free (with baseFee 0), so balances move only by value */
  gasPrice?: bigint;
  baseFee?: bigint;
  /** how long to wait for eth_chainId to answer, in ms (default 15 s) */
  timeoutMs?: number;
  /** an anvil binary to use instead of the npm one (also $INFERMESH_ANVIL) */
  binary?: string;
  /**
   * Where the chain persists: loaded at start when it exists, written every STATE_INTERVAL_S
   * seconds and on exit, so a restarted server finds its contract, stakes and escrows again.
   * Absent: the chain lives and dies with the process.
   */
  stateFile?: string;
}

/** Seconds between state dumps: what a crash of the whole machine can lose of the local chain. */
export const STATE_INTERVAL_S = 2;

export interface Anvil {
  rpcUrl: string;
  chainId: number;
  /** a viem chain for clients: id, name and this RPC URL */
  chain: Chain;
  /** anvil's ten default dev accounts (the "test … junk" mnemonic), 10 000 ETH each */
  accounts: PrivateKeyAccount[];
  /** Ends the process and waits for it to exit; safe to call twice. */
  stop(): Promise<void>;
}

/**
 * The keys anvil derives from its default mnemonic "test test test test test test test test test
 * test test junk" (m/44'/60'/0'/0/i). Public test keys: never use them on a real network.
 */
export const ANVIL_DEV_KEYS: readonly Hex[] = [
  '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80',
  '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d',
  '0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a',
  '0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6',
  '0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a',
  '0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba',
  '0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e',
  '0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356',
  '0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97',
  '0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6',
];

const INSTALL_HINT = 'run `npm install` (it installs @foundry-rs/anvil and its platform binary), or set INFERMESH_ANVIL to an anvil binary';

/** The anvil binary from the installed npm package for this platform; PATH is never consulted. */
export function anvilBinary(env: NodeJS.ProcessEnv = process.env): string {
  if (env.INFERMESH_ANVIL) return env.INFERMESH_ANVIL;
  const arch = ({ x64: 'amd64', arm64: 'arm64' } as Record<string, string>)[process.arch];
  const pkg = `@foundry-rs/anvil-${process.platform}-${arch ?? process.arch}`;
  let dir: string;
  try {
    dir = dirname(createRequire(import.meta.url).resolve(`${pkg}/package.json`));
  } catch (err) {
    throw new AnvilError(`the anvil package for this platform (${pkg}) is not installed: ${INSTALL_HINT}`, { cause: err });
  }
  const binary = join(dir, 'bin', process.platform === 'win32' ? 'anvil.exe' : 'anvil');
  if (!existsSync(binary)) throw new AnvilError(`${pkg} has no binary at ${binary}: ${INSTALL_HINT}`);
  return binary;
}

export async function startAnvil(options: StartAnvilOptions = {}): Promise<Anvil> {
  const binary = options.binary ?? anvilBinary();
  const timeoutMs = options.timeoutMs ?? 15_000;
  const args = ['--host', '127.0.0.1', '--port', String(options.port ?? 0), '--accounts', String(ANVIL_DEV_KEYS.length)];
  if (options.blockTime !== undefined) args.push('--block-time', String(options.blockTime));
  if (options.chainId !== undefined) args.push('--chain-id', String(options.chainId));
  if (options.gasPrice !== undefined) args.push('--gas-price', String(options.gasPrice));
  if (options.baseFee !== undefined) args.push('--block-base-fee-per-gas', String(options.baseFee));
  if (options.stateFile !== undefined) args.push('--state', options.stateFile, '--state-interval', String(STATE_INTERVAL_S));

  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  // If this process exits without stop() (a crashed test run), take anvil with it: no orphans.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  // Keep only a tail for error messages; anvil logs every call, and an unread pipe would block it.
  let output = '';
  const keep = (chunk: Buffer) => { output = (output + chunk.toString()).slice(-4000); };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);

  const stop = once(async () => {
    process.removeListener('exit', killOnExit);
    await terminate(child);
  });

  try {
    const port = await listeningPort(child, () => output, binary, timeoutMs);
    const rpcUrl = `http://127.0.0.1:${port}`;
    const chainId = await waitForChainId(rpcUrl, child, () => output, timeoutMs);
    const chain = defineChain({
      id: chainId,
      name: 'anvil',
      nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
      rpcUrls: { default: { http: [rpcUrl] } },
    });
    return { rpcUrl, chainId, chain, accounts: ANVIL_DEV_KEYS.map((k) => privateKeyToAccount(k)), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Reads the port from anvil's "Listening on 127.0.0.1:PORT" banner. */
function listeningPort(child: ChildProcess, output: () => string, binary: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new AnvilError(`anvil did not start listening within ${timeoutMs} ms`, { details: output() })), timeoutMs);
    const onData = () => {
      const match = /Listening on [\d.]+:(\d+)/.exec(output());
      if (match) done(undefined, Number(match[1]));
    };
    const onError = (err: NodeJS.ErrnoException) =>
      done(new AnvilError(`cannot run anvil at ${binary} (${err.code ?? err.message}): ${INSTALL_HINT}`, { cause: err }));
    const onExit = (code: number | null, signal: string | null) =>
      done(new AnvilError(`anvil exited before listening (${signal ?? `code ${code}`}); is the port taken? ${output().trim().split('\n').slice(-3).join(' | ')}`, { details: output() }));
    function done(err?: Error, port?: number) {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.off('error', onError);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve(port!);
    }
    child.stdout!.on('data', onData);
    child.on('error', onError);
    child.on('exit', onExit);
  });
}

async function waitForChainId(rpcUrl: string, child: ChildProcess, output: () => string, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new AnvilError(`anvil exited with code ${child.exitCode}`, { details: output() });
    try {
      const res = await fetch(rpcUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
        signal: AbortSignal.timeout(1000),
      });
      const body = (await res.json()) as { result?: string };
      if (body.result) return Number(body.result);
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new AnvilError(`anvil at ${rpcUrl} did not answer eth_chainId within ${timeoutMs} ms`, { cause: lastError, details: output() });
}

/** SIGTERM, then SIGKILL if it lingers; resolves once the process is gone. */
function terminate(child: ChildProcess): Promise<void> {
  // No pid: spawn itself failed, there is no process to end.
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill('SIGKILL'), 3000);
    child.once('exit', () => {
      clearTimeout(force);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

function once(run: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  return () => (running ??= run());
}
