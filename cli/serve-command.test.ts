import { describe, expect, it } from 'vitest';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { exposureWarning, portFree } from './serve-command.ts';

describe('serve beyond this machine', () => {
  it('warns in one line when it listens beyond loopback without a public URL, and only then', () => {
    for (const host of ['0.0.0.0', '::', '192.0.2.10', 'grid.example.org']) {
      const warning = exposureWarning(host, undefined);
      expect(warning).toMatch(new RegExp(`^warning: listening on ${host.replaceAll('.', '\\.')} beyond this machine without --public-url: .*--public-url$`));
      expect(warning).not.toContain('\n');
    }
    for (const host of ['127.0.0.1', 'localhost', '::1', '[::1]', '127.0.0.2']) expect(exposureWarning(host, undefined), host).toBeUndefined();
    expect(exposureWarning('0.0.0.0', new URL('https://grid.example.org'))).toBeUndefined();
  });
});

describe('serve on a port another process holds', () => {
  it('is refused by name before anything starts', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const { port } = holder.address() as AddressInfo;
    try {
      await expect(portFree('127.0.0.1', port)).rejects.toMatchObject({ name: 'UsageError', source: '--port', message: `--port: port ${port} on 127.0.0.1 is in use by another process; pick another (0 = any free) or stop that one` });
    } finally {
      holder.close();
    }
    await expect(portFree('127.0.0.1', port)).resolves.toBeUndefined();
  });
});
