import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { describe, expect, it } from 'vitest';
import { VoucherAmountError, VoucherSignatureError } from './errors.ts';
import { checkVoucher, recoverVoucherSigner, signVoucher, voucherDomain, voucherTypes } from './voucher.ts';

const alice = privateKeyToAccount(generatePrivateKey());
const mallory = privateKeyToAccount(generatePrivateKey());
const domain = voucherDomain({ chainId: 31337, verifyingContract: '0x5FbDB2315678afecb367f032d93F642f64180aa3' });

describe('vouchers', () => {
  it('recovers the client that signed', async () => {
    const v = await signVoucher(alice, domain, { cumulativeAmount: 1000n });
    expect(v.client).toBe(alice.address);
    expect(await recoverVoucherSigner(domain, v)).toBe(alice.address);
    expect(await checkVoucher(domain, undefined, v)).toEqual(v);
  });

  it('accepts a voucher whose cumulative amount grows', async () => {
    const first = await signVoucher(alice, domain, { cumulativeAmount: 1000n });
    const second = await signVoucher(alice, domain, { cumulativeAmount: 1500n });
    expect((await checkVoucher(domain, first, second)).cumulativeAmount).toBe(1500n);
  });

  it('rejects a voucher signed by someone other than the client it names', async () => {
    // Mallory signs a voucher that names Alice, hoping to spend Alice's escrow.
    const message = { client: alice.address, cumulativeAmount: 1000n };
    const signature = await mallory.signTypedData({ domain, types: voucherTypes, primaryType: 'Voucher', message });
    const forged = { ...message, signature };
    await expect(checkVoucher(domain, undefined, forged)).rejects.toSatisfy(
      (e: Error) => e instanceof VoucherSignatureError && e.name === 'VoucherSignatureError' && e.message.includes(mallory.address),
    );
  });

  it('rejects a voucher signed for another deployment', async () => {
    const elsewhere = voucherDomain({ chainId: 1, verifyingContract: domain.verifyingContract });
    const v = await signVoucher(alice, elsewhere, { cumulativeAmount: 1000n });
    await expect(checkVoucher(domain, undefined, v)).rejects.toBeInstanceOf(VoucherSignatureError);
  });

  it('rejects an amount changed after signing and a garbled signature', async () => {
    const v = await signVoucher(alice, domain, { cumulativeAmount: 1000n });
    await expect(checkVoucher(domain, undefined, { ...v, cumulativeAmount: 9000n })).rejects.toBeInstanceOf(VoucherSignatureError);
    await expect(checkVoucher(domain, undefined, { ...v, signature: '0x1234' })).rejects.toBeInstanceOf(VoucherSignatureError);
  });

  it('rejects a cumulative amount lower than or equal to the one accepted', async () => {
    const accepted = await signVoucher(alice, domain, { cumulativeAmount: 1000n });
    for (const amount of [999n, 1000n]) {
      const stale = await signVoucher(alice, domain, { cumulativeAmount: amount });
      await expect(checkVoucher(domain, accepted, stale)).rejects.toSatisfy(
        (e: Error) => e instanceof VoucherAmountError && e.name === 'VoucherAmountError',
      );
    }
  });

  it('refuses to sign for another client', async () => {
    await expect(signVoucher(alice, domain, { client: mallory.address, cumulativeAmount: 1n })).rejects.toThrow(/cannot sign a voucher/);
  });
});
