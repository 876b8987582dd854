import { describe, expect, it } from 'vitest';
import { exposureWarning } from './serve-command.ts';

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
