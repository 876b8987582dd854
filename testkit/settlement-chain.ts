/**
 * One local chain with a deployed Settlement and a wallet per role, for the settlement tests:
 * coordinator (also the deployer), validator, treasury (never sends a transaction, so its balance
 * moves only by slashes), three providers and three clients, all anvil dev accounts.
 */
import { createPublicClient, createTestClient, createWalletClient, defineChain, http, type Address, type PublicClient } from 'viem';
import type { PrivateKeyAccount } from 'viem/accounts';
import { deploySettlement, type SettlementWallet } from '../shared/settle/settlement-client.ts';
import { startAnvil, type Anvil } from '../signaling-server/chain/anvil.ts';
import { settlementArtifact } from '../signaling-server/settle/contract.ts';

export interface SettlementChain {
  anvil: Anvil;
  publicClient: PublicClient;
  testClient: ReturnType<typeof createTestClient>;
  wallet(account: PrivateKeyAccount): SettlementWallet;
  coordinator: SettlementWallet;
  validator: SettlementWallet;
  treasury: PrivateKeyAccount;
  providers: SettlementWallet[];
  clients: SettlementWallet[];
  /** a fresh Settlement with the roles above */
  deploy(withdrawDelay?: number): Promise<Address>;
}

export const WITHDRAW_DELAY = 3600;

export async function startSettlementChain(): Promise<SettlementChain> {
  const anvil = await startAnvil();
  const transport = http(anvil.rpcUrl);
  // Anvil mines at once; poll receipts every 20 ms instead of viem's default 4 s.
  const pollingInterval = 20;
  const wallet = (account: PrivateKeyAccount) => createWalletClient({ account, chain: anvil.chain, transport, pollingInterval });
  const [coordinator, validator, treasury, p1, p2, p3, c1, c2, c3] = anvil.accounts;
  const { bytecode } = settlementArtifact();
  const chain: SettlementChain = {
    anvil,
    publicClient: createPublicClient({ chain: anvil.chain, transport, pollingInterval }),
    testClient: createTestClient({ mode: 'anvil', chain: anvil.chain, transport }),
    wallet,
    coordinator: wallet(coordinator),
    validator: wallet(validator),
    treasury,
    providers: [p1, p2, p3].map(wallet),
    clients: [c1, c2, c3].map(wallet),
    async deploy(withdrawDelay = WITHDRAW_DELAY) {
      const { address } = await deploySettlement(chain.coordinator, {
        coordinator: coordinator.address,
        validator: validator.address,
        treasury: treasury.address,
        withdrawDelay,
        bytecode,
      });
      return address;
    },
  };
  return chain;
}

/** A wallet on the chain a grid settlement runs (startGridSettlement's own anvil, in tests). */
export function walletOn(chain: { chainId: number; rpcUrl: string }, account: PrivateKeyAccount): SettlementWallet {
  const viemChain = defineChain({ id: chain.chainId, name: `chain ${chain.chainId}`, nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 }, rpcUrls: { default: { http: [chain.rpcUrl] } } });
  return createWalletClient({ account, chain: viemChain, transport: http(chain.rpcUrl), pollingInterval: 20 });
}
