import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { selfSignedCertificate } from '../testkit/tls-proxy.ts';
import { readTlsFiles } from './tls-files.ts';

const dir = mkdtempSync(join(tmpdir(), 'infermesh-tls-files-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  writeFileSync(join(dir, name), text);
  return join(dir, name);
};
const one = selfSignedCertificate();
const other = selfSignedCertificate();
const certFile = file('cert.pem', one.cert);
const keyFile = file('key.pem', one.key);

describe('the server’s certificate and key', () => {
  it('are read when the key is the certificate’s and it is valid now', () => {
    expect(readTlsFiles({ certFile, keyFile })).toEqual(one);
  });

  it('are refused by name, with the flag at fault', () => {
    const day = 24 * 3600 * 1000;
    const refused: [Parameters<typeof readTlsFiles>, string, RegExp][] = [
      [[{ certFile, keyFile: file('other-key.pem', other.key) }], '--tls-key', /other-key\.pem is not the key of the certificate in .*cert\.pem \(CN=localhost\)/],
      [[{ certFile, keyFile }, new Date(Date.now() + 3 * day)], '--tls-cert', /the certificate in .*cert\.pem expired on \d{4}-/],
      [[{ certFile, keyFile }, new Date(Date.now() - 3 * day)], '--tls-cert', /is not valid until \d{4}-/],
      [[{ certFile: join(dir, 'missing.pem'), keyFile }], '--tls-cert', /cannot read .*missing\.pem: ENOENT/],
      [[{ certFile: file('junk.pem', 'not a certificate'), keyFile }], '--tls-cert', /junk\.pem holds no PEM certificate/],
      [[{ certFile, keyFile: file('junk-key.pem', one.cert) }], '--tls-key', /junk-key\.pem holds no PEM private key/],
    ];
    for (const [args, source, message] of refused) {
      expect(() => readTlsFiles(...args)).toThrow(expect.objectContaining({ name: 'UsageError', source, message: expect.stringMatching(message) }));
    }
  });
});
