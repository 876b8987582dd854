/**
 * A donor in this Node process: the donor tab's code (web/donor/donor.ts) on Node's platform.
 * The same libp2p node, WebRTC, swarm, stage server and trust code as a tab; the shard engine is
 * onnxruntime-node in a worker thread (worker/node/engine-host.ts), pieces are kept in memory,
 * and earnings go to an account kept in a key file, as a tab keeps one in localStorage.
 * `infermesh donate` runs one; `infermesh serve` starts `--donors` of them beside the server.
 */
import * as Comlink from 'comlink';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { dirname } from 'node:path';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { UsageError } from '../shared/errors.ts';
import { createMemoryPieceStore } from '../shared/swarm/piece-store.ts';
import { startDonor } from '../web/donor/donor.ts';
import type { Donor, DonorDeps, DonorHooks, DonorOptions } from '../web/donor/donor.ts';
import { startNodeEngine } from '../worker/node/engine-host.ts';

export interface NodeDonorOptions extends Omit<DonorOptions, 'wallet' | 'executionProvider'> {
  /** the file holding the payout account's key when `payTo` names none (made on first use, mode 0600) */
  payoutKeyFile: string;
}

/** Node's side of the donor's platform (DonorDeps). */
export function nodeDonorDeps(options: Pick<NodeDonorOptions, 'payoutKeyFile'>): DonorDeps {
  return {
    startEngine: () => {
      const host = startNodeEngine();
      return {
        engine: host.engine,
        stepTransfer: (frame) => host.engine.step(Comlink.transfer(frame, [frame.buffer as ArrayBuffer])) as Promise<Uint8Array>,
        terminate: () => void host.terminate(),
      };
    },
    openStore: async () => ({ ...createMemoryPieceStore(), close() {} }),
    preferredProvider: async () => 'cpu',
    // Half of this machine's memory, as a tab offers half of what its browser reports.
    offeredMemory: async () => totalmem() / 2,
    payoutAccount: () => payoutAccount(options.payoutKeyFile),
  };
}

export function startNodeDonor(options: NodeDonorOptions, hooks: DonorHooks): Promise<Donor> {
  return startDonor({ ...options, executionProvider: 'cpu' }, hooks, nodeDonorDeps(options));
}

/** The address of the key in `file`, made there on first use: earnings accrue across restarts, and the key is the donor's to withdraw with. */
export function payoutAccount(file: string): string {
  if (!existsSync(file)) {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, `${generatePrivateKey()}\n`, { mode: 0o600, flag: 'wx' });
  }
  const key = readFileSync(file, 'utf8').trim();
  if (!/^0x[0-9a-fA-F]{64}$/.test(key)) throw new UsageError('is not a private key (0x and 64 hex digits); move it away to have a new one made', { source: file });
  chmodSync(file, 0o600);
  return privateKeyToAccount(key as `0x${string}`).address;
}
