/**
 * EIP-712 vouchers: after each request a client signs the *cumulative* amount it owes the grid,
 * so the latest voucher supersedes every earlier one (payment-channel style) and the coordinator
 * keeps one per client. Isomorphic: the browser SDK signs with a viem LocalAccount, the
 * coordinator checks with `checkVoucher` before accepting and redeems on chain with the same bytes.
 * Settlement.sol recomputes the same digest (`voucherDigest`), so what passes here passes there.
 */
import { isAddressEqual, parseSignature, recoverTypedDataAddress, type Address, type Hex, type LocalAccount } from 'viem';
import { UsageError } from '../errors.ts';
import { VoucherAmountError, VoucherSignatureError } from './errors.ts';

/** Must match NAME_HASH and VERSION_HASH in Settlement.sol. */
export const VOUCHER_DOMAIN_NAME = 'infermesh Settlement';
export const VOUCHER_DOMAIN_VERSION = '1';

export const voucherTypes = {
  Voucher: [
    { name: 'client', type: 'address' },
    { name: 'cumulativeAmount', type: 'uint256' },
  ],
} as const;

export interface VoucherDomain {
  name: string;
  version: string;
  chainId: number;
  /** the Settlement contract: a voucher for one deployment is worthless on another */
  verifyingContract: Address;
}

export interface Voucher {
  client: Address;
  /** everything the client owes so far, in wei; only grows */
  cumulativeAmount: bigint;
}

export interface SignedVoucher extends Voucher {
  signature: Hex;
}

/** secp256k1n / 2: Settlement.sol refuses the high-s twin of a signature, so we do too. */
const HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n;

export function voucherDomain(deployment: { chainId: number; verifyingContract: Address }): VoucherDomain {
  return { name: VOUCHER_DOMAIN_NAME, version: VOUCHER_DOMAIN_VERSION, ...deployment };
}

/** Signs as the account; the voucher's client is the account unless named (and then must be it). */
export async function signVoucher(
  account: LocalAccount,
  domain: VoucherDomain,
  voucher: { client?: Address; cumulativeAmount: bigint },
): Promise<SignedVoucher> {
  const client = voucher.client ?? account.address;
  if (!isAddressEqual(client, account.address)) {
    throw new UsageError(`account ${account.address} cannot sign a voucher for client ${client}`);
  }
  if (voucher.cumulativeAmount <= 0n) throw new UsageError('a voucher amount must be above zero');
  const message = { client, cumulativeAmount: voucher.cumulativeAmount };
  const signature = await account.signTypedData({ domain, types: voucherTypes, primaryType: 'Voucher', message });
  return { ...message, signature };
}

/** The address that signed the voucher; throws VoucherSignatureError for a malformed or malleable signature. */
export async function recoverVoucherSigner(domain: VoucherDomain, voucher: SignedVoucher): Promise<Address> {
  try {
    if (BigInt(parseSignature(voucher.signature).s) > HALF_N) throw new Error('high-s (malleable) signature');
    return await recoverTypedDataAddress({
      domain,
      types: voucherTypes,
      primaryType: 'Voucher',
      message: { client: voucher.client, cumulativeAmount: voucher.cumulativeAmount },
      signature: voucher.signature,
    });
  } catch (err) {
    throw new VoucherSignatureError(`voucher for ${voucher.client} has an unreadable signature`, { cause: err });
  }
}

/**
 * Accepts `incoming` over `latestAccepted` (the client's previous voucher, if any) or throws:
 * VoucherSignatureError when the signer is not the client the voucher names, VoucherAmountError
 * when the cumulative amount does not grow. Returns the voucher to keep as the new latest.
 */
export async function checkVoucher(
  domain: VoucherDomain,
  latestAccepted: Voucher | undefined,
  incoming: SignedVoucher,
): Promise<SignedVoucher> {
  const signer = await recoverVoucherSigner(domain, incoming);
  if (!isAddressEqual(signer, incoming.client)) {
    throw new VoucherSignatureError(`voucher names client ${incoming.client} but was signed by ${signer}`);
  }
  if (latestAccepted) {
    if (!isAddressEqual(latestAccepted.client, incoming.client)) {
      throw new UsageError(`latest voucher is for ${latestAccepted.client}, not ${incoming.client}`);
    }
    if (incoming.cumulativeAmount <= latestAccepted.cumulativeAmount) {
      throw new VoucherAmountError(
        `voucher for ${incoming.client} is for ${incoming.cumulativeAmount} wei, not above the ${latestAccepted.cumulativeAmount} already accepted`,
      );
    }
  } else if (incoming.cumulativeAmount <= 0n) {
    throw new VoucherAmountError(`voucher for ${incoming.client} is for ${incoming.cumulativeAmount} wei`);
  }
  return incoming;
}
