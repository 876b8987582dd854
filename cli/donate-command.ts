/**
 * `infermesh donate <url>`: this machine joins the grid at <url> as a donor from a terminal, as
 * a browser tab does from the donor page (cli/node-donor.ts), until Ctrl-C. A donor the grid
 * stops (it cannot rejoin, or the validator banned it) ends the command with its error.
 */
import { join } from 'node:path';
import { UsageError } from '../shared/errors.ts';
import { cacheDir } from './defaults.ts';
import { createDonorStatus } from './donor-status.ts';
import { startNodeDonor } from './node-donor.ts';

export interface DonateOptions {
  threads?: number;
  payTo?: string;
  /** the payout key file when --pay-to names no address (default: in the cache folder) */
  keyFile?: string;
}

/** The grid's origin from what the donor typed: http(s), with or without a path to its donor page. */
export function gridOrigin(value: string): string {
  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `https://${value}`);
  } catch {
    throw new UsageError(`is not a URL: ${JSON.stringify(value)} (e.g. https://grid.example.org)`, { source: '<url>' });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new UsageError(`must be an http(s):// URL, got ${url.protocol}`, { source: '<url>' });
  return url.origin;
}

export async function donateCommand(url: string, opts: DonateOptions): Promise<void> {
  const serverUrl = gridOrigin(url);
  if (opts.payTo !== undefined && !/^0x[0-9a-fA-F]{40}$/.test(opts.payTo)) throw new UsageError(`must be an EVM address (0x and 40 hex digits), got ${JSON.stringify(opts.payTo)}`, { source: '--pay-to' });
  const status = createDonorStatus('donor');
  let stopped: (err?: Error) => void = () => undefined;
  const done = new Promise<Error | undefined>((resolve) => (stopped = resolve));
  const payoutKeyFile = opts.keyFile ?? join(cacheDir(), 'donor', 'payout.key');
  const donor = await startNodeDonor(
    { serverUrl, threads: opts.threads, payTo: opts.payTo, payoutKeyFile },
    {
      ...status,
      update(patch) {
        status.update(patch);
        if (patch.status === 'error') stopped(new UsageError('the donor stopped (its error is above)', { source: serverUrl }));
      },
    },
  ).catch((err: Error) => {
    status.stop();
    throw new UsageError(`could not join the grid: ${(err as { shortMessage?: string }).shortMessage ?? err.message}`, { source: serverUrl, cause: err });
  });
  const state = donor.state();
  process.stderr.write(`donor: peer ${state.peerId}; earnings to ${state.trust?.payTo}${opts.payTo ? '' : ` (its key: ${payoutKeyFile})`}; Ctrl-C to stop\n`);
  const onSignal = () => stopped();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const err = await done;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  status.stop();
  process.stderr.write('donor: leaving the grid\n');
  await donor.stop();
  if (err) throw err;
}
