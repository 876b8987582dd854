import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { AnvilError, startAnvil } from './anvil.ts';

/** Live anvil processes started from this test process (ps, so a leaked one is seen even if our handle forgot it). */
function anvilChildren(): string[] {
  const out = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(process.pid)], { encoding: 'utf8' });
  return out.split('\n').filter((l) => /anvil/.test(l));
}

describe('startAnvil', () => {
  it('answers eth_chainId on a free port with funded dev accounts, and leaves no process after stop', async () => {
    const started = performance.now();
    const anvil = await startAnvil();
    const startMs = performance.now() - started;
    try {
      expect(anvil.rpcUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(anvil.chainId).toBe(31337);
      expect(anvil.accounts[0].address).toBe('0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266');
      const res = await fetch(anvil.rpcUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_getBalance', params: [anvil.accounts[9].address, 'latest'] }),
      });
      expect(BigInt(((await res.json()) as { result: string }).result)).toBe(10_000n * 10n ** 18n);
      expect(anvilChildren()).toHaveLength(1);
      expect(startMs).toBeLessThan(10_000);
    } finally {
      await anvil.stop();
    }
    expect(anvilChildren()).toHaveLength(0);
    await anvil.stop(); // a second stop is harmless
  });

  it('runs two chains side by side on different ports', async () => {
    const [a, b] = await Promise.all([startAnvil(), startAnvil({ chainId: 1337 })]);
    try {
      expect(a.rpcUrl).not.toBe(b.rpcUrl);
      expect(b.chainId).toBe(1337);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });

  it('names the fix when the binary cannot be run', async () => {
    const err = await startAnvil({ binary: '/nonexistent/anvil' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AnvilError);
    expect((err as AnvilError).name).toBe('AnvilError');
    expect((err as AnvilError).message).toMatch(/ENOENT.*npm install.*INFERMESH_ANVIL/);
  });

  it('says the port is taken when anvil cannot bind it', async () => {
    const first = await startAnvil();
    try {
      const port = Number(new URL(first.rpcUrl).port);
      const err = await startAnvil({ port }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AnvilError);
      expect((err as AnvilError).message).toMatch(/exited before listening/);
    } finally {
      await first.stop();
    }
    expect(anvilChildren()).toHaveLength(0);
  });
});
