/** The server's configuration: flags over INFERMESH_* variables over defaults, and refusals naming the flag. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_WEB_DIR, parseServerConfig, SERVER_ENV, type ServerConfig } from './config.ts';

const deps = { cwd: '/srv/infermesh', homedir: () => '/home/ada' };
const NO_ICE = { stun: [], turn: [], turnSecret: undefined, turnTtlS: 43_200 };
function config(argv: string[], env: Record<string, string> = {}): ServerConfig {
  const parsed = parseServerConfig(argv, env, deps);
  if (!('config' in parsed)) throw new Error('expected a configuration, got help');
  return parsed.config;
}
function refusal(argv: string[], env: Record<string, string> = {}): Error & { source?: string } {
  try {
    parseServerConfig(argv, env, deps);
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a refusal');
}

describe('parseServerConfig', () => {
  it('defaults: loopback, port 8470, no public URL, the default model, the user cache, dist/web', () => {
    expect(config([])).toEqual({
      host: '127.0.0.1',
      port: 8470,
      publicUrl: undefined,
      tls: undefined,
      ice: NO_ICE,
      model: undefined,
      dataDir: '/home/ada/.cache/infermesh/server',
      maxLayersPerNode: undefined,
      webDir: DEFAULT_WEB_DIR,
      chain: { mode: 'local' },
      rewardHalfLifeMs: 3_600_000,
      donors: 1,
      openGateway: false,
      sponsorCapWei: undefined,
    });
    expect(DEFAULT_WEB_DIR.endsWith(join('dist', 'web'))).toBe(true);
  });

  it('keeps state under $INFERMESH_CACHE/server, else $XDG_CACHE_HOME/infermesh/server', () => {
    expect(config([], { INFERMESH_CACHE: '/cache' }).dataDir).toBe('/cache/server');
    expect(config([], { XDG_CACHE_HOME: '/xdg' }).dataDir).toBe('/xdg/infermesh/server');
  });

  it('reads every flag, resolving folders against the working directory', () => {
    expect(
      config(['--host', '0.0.0.0', '--port', '0', '--public-url', 'https://grid.example.org', '--model', 'pkg/s260', '--data', '/var/lib/im', '--max-layers-per-node', '6', '--web', 'build', '--donors', '0', '--open-gateway', '--sponsor-cap', '1.5']),
    ).toEqual({ host: '0.0.0.0', port: 0, publicUrl: new URL('https://grid.example.org/'), model: '/srv/infermesh/pkg/s260', dataDir: '/var/lib/im', maxLayersPerNode: 6, webDir: '/srv/infermesh/build', chain: { mode: 'local' }, rewardHalfLifeMs: 3_600_000, ice: NO_ICE, donors: 0, openGateway: true, sponsorCapWei: 1_500_000_000_000_000_000n });
    expect(config(['--reward-half-life', '0']).rewardHalfLifeMs).toBe(0);
    expect(config(['--stun', 'stun:a.example:3478', '--stun', 'stun:b.example', '--turn', 'turn:t.example:3478?transport=udp', '--turn-secret', 's']).ice).toEqual({
      stun: ['stun:a.example:3478', 'stun:b.example'],
      turn: ['turn:t.example:3478?transport=udp'],
      turnSecret: 's',
      turnTtlS: 43_200,
    });
    expect(config([], { INFERMESH_STUN: 'stun:a.example, stun:b.example', INFERMESH_TURN: 'turns:t.example:5349', INFERMESH_TURN_SECRET: 'k' }).ice).toMatchObject({ stun: ['stun:a.example', 'stun:b.example'], turn: ['turns:t.example:5349'], turnSecret: 'k' });
    expect(config(['--tls-cert', 'tls/cert.pem', '--tls-key', '/etc/key.pem']).tls).toEqual({ certFile: '/srv/infermesh/tls/cert.pem', keyFile: '/etc/key.pem' });
    expect(config(['--reward-half-life', '2.5']).rewardHalfLifeMs).toBe(150_000);
    expect(config(['--chain', 'off']).chain).toEqual({ mode: 'off' });
    expect(config(['--rpc-url', 'https://rpc.example/v1', '--chain-key', `0x${'ab'.repeat(32)}`, '--contract', `0x${'12'.repeat(20)}`, '--treasury', `0x${'34'.repeat(20)}`]).chain).toEqual({
      mode: 'rpc',
      rpcUrl: 'https://rpc.example/v1',
      privateKey: `0x${'ab'.repeat(32)}`,
      contract: `0x${'12'.repeat(20)}`,
      treasury: `0x${'34'.repeat(20)}`,
    });
  });

  it('reads INFERMESH_* variables, and a flag wins over its variable', () => {
    const env = {
      INFERMESH_HOST: '::',
      INFERMESH_PORT: '8000',
      INFERMESH_PUBLIC_URL: 'https://grid.example.org:8443',
      INFERMESH_MODEL: '/models/tiny',
      INFERMESH_DATA: 'state',
      INFERMESH_MAX_LAYERS_PER_NODE: '2',
      INFERMESH_WEB: '/web',
      INFERMESH_CHAIN: 'off',
      INFERMESH_REWARD_HALF_LIFE: '10',
      INFERMESH_DONORS: '3',
      INFERMESH_OPEN_GATEWAY: 'true',
      INFERMESH_SPONSOR_CAP: '0',
    };
    expect(config([], env)).toEqual({
      host: '::', port: 8000, publicUrl: new URL('https://grid.example.org:8443/'), model: '/models/tiny', dataDir: '/srv/infermesh/state', maxLayersPerNode: 2, webDir: '/web',
      chain: { mode: 'off' },
      rewardHalfLifeMs: 600_000,
      ice: NO_ICE,
      donors: 3,
      openGateway: true,
      sponsorCapWei: 0n,
    });
    expect(config(['--port', '9000'], env).port).toBe(9000);
    // An external chain, on loopback or (its callers then need keys) beyond.
    const rpc = { INFERMESH_RPC_URL: 'http://127.0.0.1:8545', INFERMESH_CHAIN_KEY: `0x${'cd'.repeat(32)}` };
    expect(config([], rpc).chain).toEqual({ mode: 'rpc', rpcUrl: 'http://127.0.0.1:8545', privateKey: `0x${'cd'.repeat(32)}`, contract: undefined, treasury: undefined });
    expect(config(['--public-url', 'https://grid.example.org'], rpc).chain.mode).toBe('rpc');
  });

  it('--help lists every option with its variable', () => {
    const parsed = parseServerConfig(['--help'], {}, deps);
    expect('help' in parsed).toBe(true);
    const help = (parsed as { help: string }).help;
    for (const flag of ['--host', '--port', '--public-url', '--model', '--data', '--max-layers-per-node', '--web', '--donors']) expect(help).toContain(flag);
    for (const name of Object.values(SERVER_ENV)) expect(help).toContain(`[$${name}]`);
  });

  const bad: [string[], Record<string, string>, string, RegExp][] = [
    [['--port', 'http'], {}, '--port', /must be a port from 0 to 65535, got "http"/],
    [['--port', '70000'], {}, '--port', /must be a port/],
    [['--public-url', 'http://grid.example.org'], {}, '--public-url', /must be https:\/\/: a page loaded over plain http from another machine has no secure context/],
    [[], { INFERMESH_PUBLIC_URL: 'grid.example.org' }, 'INFERMESH_PUBLIC_URL (--public-url)', /is not a URL/],
    [['--turn', 'turn:turn.example.org:3478'], {}, '--turn', /needs the TURN servers' shared secret: --turn-secret or \$INFERMESH_TURN_SECRET/],
    [['--turn-secret', 'x'], {}, '--turn-secret', /has no --turn server to be used with/],
    [['--stun', 'stun.example.org'], {}, '--stun', /must be a stun: or stuns: URL/],
    [[], { INFERMESH_TURN: 'turn:a.example,http://b.example', INFERMESH_TURN_SECRET: 's' }, 'INFERMESH_TURN (--turn)', /must be a turn: or turns: URL/],
    [['--tls-cert', 'cert.pem'], {}, '--tls-cert', /needs its key: --tls-key or \$INFERMESH_TLS_KEY/],
    [[], { INFERMESH_TLS_KEY: 'key.pem' }, '--tls-key', /needs its certificate: --tls-cert or \$INFERMESH_TLS_CERT/],
    [['--max-layers-per-node', '0'], {}, '--max-layers-per-node', /must be an integer ≥ 1, got "0"/],
    [['--max-layers-per-node', '2.5'], {}, '--max-layers-per-node', /must be an integer ≥ 1/],
    [['--host', ''], {}, '--host', /must be a host name or IP address/],
    [['--model', ''], {}, '--model', /must name a folder/],
    [[], { INFERMESH_PORT: 'eighty' }, 'INFERMESH_PORT (--port)', /must be a port/],
    [[], { INFERMESH_MAX_LAYERS_PER_NODE: '-3' }, 'INFERMESH_MAX_LAYERS_PER_NODE (--max-layers-per-node)', /must be an integer ≥ 1/],
    [['--reward-half-life', '-1'], {}, '--reward-half-life', /must be minutes ≥ 0/],
    [['--donors', '9'], {}, '--donors', /must be an integer from 0 to 8, got "9"/],
    [[], { INFERMESH_DONORS: 'one' }, 'INFERMESH_DONORS (--donors)', /must be an integer from 0 to 8/],
    [[], { INFERMESH_REWARD_HALF_LIFE: 'soon' }, 'INFERMESH_REWARD_HALF_LIFE (--reward-half-life)', /must be minutes ≥ 0/],
    [['--chain', 'mainnet'], {}, '--chain', /must be local or off, got "mainnet"/],
    [['--rpc-url', 'localhost:8545'], {}, '--rpc-url', /must be an http\(s\) or ws\(s\) URL/],
    [['--rpc-url', 'http://127.0.0.1:8545'], {}, '--rpc-url', /needs the operator's key: --chain-key or \$INFERMESH_CHAIN_KEY/],
    [['--chain-key', '0x1234'], {}, '--chain-key', /must be a private key: 0x and 64 hex digits/],
    [['--rpc-url', 'https://rpc.example.org', '--chain-key', `0x${'ab'.repeat(32)}`, '--host', '0.0.0.0', '--open-gateway'], {}, '--rpc-url', /reachable from 0\.0\.0\.0 \(beyond this machine\) with --open-gateway would let anyone spend the operator's escrow/],
    [['--rpc-url', 'https://rpc.example.org', '--chain-key', `0x${'ab'.repeat(32)}`, '--public-url', 'https://grid.example.org'], { INFERMESH_OPEN_GATEWAY: '1' }, '--rpc-url', /reachable from https:\/\/grid\.example\.org with --open-gateway/],
    [[], { INFERMESH_OPEN_GATEWAY: 'maybe' }, 'INFERMESH_OPEN_GATEWAY (--open-gateway)', /must be 1 or 0/],
    [['--sponsor-cap', '-1'], {}, '--sponsor-cap', /must be an amount of ETH such as 2 or 0\.5, got "-1"/],
    [['--contract', 'settlement.eth'], {}, '--contract', /must be an EVM address/],
    [[], { INFERMESH_TREASURY: '0xnope' }, 'INFERMESH_TREASURY (--treasury)', /must be an EVM address/],
  ];
  for (const [argv, env, source, message] of bad) {
    it(`refuses ${argv.join(' ') || JSON.stringify(env)} with a UsageError naming ${source}`, () => {
      const err = refusal(argv, env);
      expect(err.name).toBe('UsageError');
      expect(err.source).toBe(source);
      expect(err.message).toMatch(message);
      expect(err.message.startsWith(source)).toBe(true);
    });
  }

  it('refuses unknown options and stray arguments with a UsageError pointing at --help', () => {
    expect(refusal(['--prot', '1'])).toMatchObject({ name: 'UsageError', message: expect.stringMatching(/unknown option '--prot'.*--port.*--help/) });
    // The relay shares the HTTP port now: its own port is no option any more.
    expect(refusal(['--relay-port', '9090'])).toMatchObject({ name: 'UsageError', message: expect.stringMatching(/unknown option '--relay-port'/) });
    expect(refusal(['serve'])).toMatchObject({ name: 'UsageError', message: expect.stringMatching(/too many arguments/) });
    expect(refusal(['--port'])).toMatchObject({ name: 'UsageError', message: expect.stringMatching(/'--port <n>' argument missing/) });
  });
});
