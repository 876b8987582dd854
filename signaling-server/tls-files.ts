/**
 * The certificate and key the server serves https and wss with (`serve --tls-cert --tls-key`),
 * read and checked before anything listens: a file that cannot be read, PEM that is no
 * certificate or key, a key that is not the certificate's, a certificate expired or not yet
 * valid: each refused by name, with the flag, rather than a TLS handshake failing for every
 * visitor later.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { UsageError } from '../shared/errors.ts';

export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

function read(path: string, flag: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { source: flag });
  }
}

/** The PEM certificate chain and key, checked against each other and `now`. */
export function readTlsFiles(files: TlsFiles, now: Date = new Date()): { cert: string; key: string } {
  const cert = read(files.certFile, '--tls-cert');
  const key = read(files.keyFile, '--tls-key');
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(cert);
  } catch {
    throw new UsageError(`${files.certFile} holds no PEM certificate`, { source: '--tls-cert' });
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new UsageError(`${files.keyFile} holds no PEM private key`, { source: '--tls-key' });
  }
  if (!certificate.checkPrivateKey(privateKey)) throw new UsageError(`${files.keyFile} is not the key of the certificate in ${files.certFile} (${certificate.subject.replaceAll('\n', ', ')})`, { source: '--tls-key' });
  if (new Date(certificate.validTo) <= now) throw new UsageError(`the certificate in ${files.certFile} expired on ${new Date(certificate.validTo).toISOString()}`, { source: '--tls-cert' });
  if (new Date(certificate.validFrom) > now) throw new UsageError(`the certificate in ${files.certFile} is not valid until ${new Date(certificate.validFrom).toISOString()}`, { source: '--tls-cert' });
  return { cert, key };
}
