/**
 * The README's "Run a public grid" commands are ones the server takes: every `npx infermesh
 * serve` line there (continuations joined, shell quotes and variables resolved) parses into the
 * configuration it describes. What each flag does is tested where the flag is (config.test.ts,
 * e2e/public-origin.test.ts, e2e/ice-servers.test.ts, e2e/nat.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { parseServerConfig } from './config.ts';

const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

/** The section's shell blocks' `npx infermesh serve` commands, as argument lists. */
function serveCommands(): string[][] {
  const section = README.slice(README.indexOf('## Run a public grid'), README.indexOf('\n## ', README.indexOf('## Run a public grid') + 5));
  const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1].replace(/\\\n\s*/g, ' '));
  const lines = blocks.flatMap((b) => b.split('\n')).map((l) => l.replace(/\s+#.*$/, '').trim());
  const env: Record<string, string> = { TURN_SECRET: 'a-turn-secret' };
  return lines
    .filter((l) => l.startsWith('npx infermesh serve'))
    .map((l) => [...l.slice('npx infermesh serve'.length).matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)].map((m) => (m[1] ?? m[2] ?? m[3]).replace(/\$(\w+)|\$\{(\w+)\}/g, (_, a, b) => env[a ?? b] ?? '')));
}

describe('the README’s public grid commands', () => {
  const commands = serveCommands();

  it('are there: behind a proxy, with TLS, and with STUN and TURN', () => {
    expect(commands.length).toBeGreaterThanOrEqual(3);
    const flags = new Set(commands.flat().filter((a) => a.startsWith('--')));
    for (const flag of ['--public-url', '--tls-cert', '--tls-key', '--host', '--port', '--stun', '--turn', '--turn-secret']) expect(flags).toContain(flag);
  });

  for (const [i, argv] of serveCommands().entries()) {
    it(`parse as the server takes them (command ${i + 1}: ${argv.join(' ')})`, () => {
      const parsed = parseServerConfig(argv, {}, { cwd: '/srv', homedir: () => '/home/op' });
      expect('config' in parsed).toBe(true);
      const { config } = parsed as Extract<typeof parsed, { config: unknown }>;
      expect(config.publicUrl?.href).toBe('https://grid.example.org/');
      if (argv.includes('--turn')) expect(config.ice).toMatchObject({ stun: ['stun:grid.example.org:3478'], turn: ['turn:grid.example.org:3478?transport=udp'], turnSecret: 'a-turn-secret' });
    });
  }
});
