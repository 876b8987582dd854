/**
 * Staking from the visitor's own wallet: a wallet in the page (an EIP-1193 provider such as
 * MetaMask's `window.ethereum`) sends `Settlement.stakeFor(payTo)` with ETH of its own, so this
 * tab's payout address is bonded by its visitor rather than (or beside) the operator's sponsored
 * stake. The wallet signs and sends; the page never sees a key. A slash takes this stake too.
 */
import { createWalletClient, custom, defineChain, formatEther, getAddress, parseEther, type Address, type EIP1193Provider, type Hash } from 'viem';
import { InfermeshError } from '../../shared/errors.ts';
import { stakeFor } from '../../shared/settle/settlement-client.ts';
import type { SettlementInfo } from '../../shared/settle/request-payer.ts';

/** Staking from the wallet could not start or did not go through; the message says why. */
export class WalletStakeError extends InfermeshError {
  override name = 'WalletStakeError';
}

export interface WalletStake {
  /** the wallet account that paid */
  from: Address;
  /** the payout address it staked for */
  provider: Address;
  amount: bigint;
  txHash: Hash;
}

export async function stakeFromWallet(
  options: { settlement: SettlementInfo; payTo: string; amountEth: string },
  deps: { provider?: EIP1193Provider },
): Promise<WalletStake> {
  const { settlement } = options;
  if (!deps.provider) throw new WalletStakeError('there is no wallet in this browser (an EIP-1193 provider such as MetaMask): install one, or stake with any wallet by calling stakeFor on the contract');
  let amount: bigint;
  try {
    amount = parseEther(options.amountEth.trim());
  } catch {
    amount = -1n;
  }
  if (amount <= 0n) throw new WalletStakeError(`the stake must be an amount of ETH above 0, got ${JSON.stringify(options.amountEth)}`);
  const provider = getAddress(options.payTo);
  const transport = custom(deps.provider);
  const [from] = await createWalletClient({ transport }).requestAddresses().catch((err: Error) => {
    throw new WalletStakeError(`the wallet did not share an account: ${err.message.split('\n')[0]}`, { cause: err });
  });
  if (!from) throw new WalletStakeError('the wallet shared no account');
  const chainId = Number(await deps.provider.request({ method: 'eth_chainId' }));
  if (chainId !== settlement.chainId) throw new WalletStakeError(`the wallet is on chain ${chainId}; this grid settles on chain ${settlement.chainId}: switch the wallet's network`);
  const chain = defineChain({
    id: settlement.chainId,
    name: `infermesh settlement (chain ${settlement.chainId})`,
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: settlement.rpcUrl ? [settlement.rpcUrl] : [] } },
  });
  const wallet = createWalletClient({ account: from, chain, transport, pollingInterval: 500 });
  try {
    const receipt = await stakeFor(wallet, { settlement: settlement.contract, provider, amount });
    return { from, provider, amount, txHash: receipt.transactionHash };
  } catch (err) {
    throw new WalletStakeError(`staking ${formatEther(amount)} ETH for ${provider} failed: ${(err as Error).message.split('\n')[0]}`, { cause: err });
  }
}
