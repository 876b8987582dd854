/**
 * SDK clients pay over HTTP (shared/settle/request-payer.ts is the other side):
 *
 *   POST /api/vouchers            { voucher: { client, cumulativeAmount, signature }, requestIds }
 *                                 the settler checks the voucher (signature, growth, escrow) and
 *                                 keeps it; what it adds pays for verified work on requestIds.
 *                                 200 { object: 'voucher', client, cumulativeAmount, amount, requestIds }
 *                                 400 { error: { message, code } }, code the refusal's stable name:
 *                                 VoucherSignatureError, VoucherAmountError, VoucherEscrowError
 *                                 (each recorded in the ledger's rejected vouchers) or
 *                                 MalformedVoucherError (a body that is not a voucher)
 *   GET /api/vouchers/<address>   { object: 'voucher.latest', client, cumulativeAmount, redeemed }:
 *                                 the latest accepted amount ('0' before any), where a
 *                                 reconnecting client continues its sequence
 *
 * Registered by grid-server.ts only when settlement runs. Amounts are wei as decimal strings.
 */
import { getAddress, isAddress, type Address, type Hex } from 'viem';
import type { SignedVoucher } from '../../shared/settle/voucher.ts';
import { HttpError } from '../http/errors.ts';
import { pathParameter } from '../http/request-target.ts';
import { jsonResponse, type ApiHandler } from '../http/server.ts';
import type { GridSettlement } from './grid-settlement.ts';

/** The settler's refusals that are the client's fault: answered 400 with the name as `code`. */
const REFUSALS = ['VoucherSignatureError', 'VoucherAmountError', 'VoucherEscrowError'];
/** One voucher pays for one request, retried on a fresh route at most a few times. */
export const MAX_REQUEST_IDS = 16;
/** Request ids are UUIDs; anything much longer is not one of ours. */
const MAX_REQUEST_ID_LENGTH = 128;
/** 2^256 - 1 has 78 digits. */
const UINT256_MAX = 2n ** 256n - 1n;

/** A POST /api/vouchers body that is not a voucher and request ids (400). */
export class MalformedVoucherError extends HttpError {
  override name = 'MalformedVoucherError';
  constructor(message: string, param: string) {
    super(400, message, { code: 'MalformedVoucherError', param });
  }
}

/** The settler refused a voucher (400); `code` is the settler's error name. */
export class VoucherRefusedError extends HttpError {
  override name = 'VoucherRefusedError';
  constructor(cause: Error) {
    super(400, cause.message, { code: cause.name, param: 'voucher', cause });
  }
}

/** POST /api/vouchers's body, or a MalformedVoucherError naming the field. */
export function parseVoucherBody(body: unknown): { voucher: SignedVoucher; requestIds: string[] } {
  const object = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);
  if (!object(body)) throw new MalformedVoucherError('the body must be a JSON object { voucher: { client, cumulativeAmount, signature }, requestIds }', 'body');
  const v = body.voucher;
  if (!object(v)) throw new MalformedVoucherError('voucher must be an object { client, cumulativeAmount, signature }', 'voucher');
  if (typeof v.client !== 'string' || !isAddress(v.client, { strict: false })) throw new MalformedVoucherError('voucher.client must be a 0x-prefixed 20-byte address', 'voucher.client');
  if (typeof v.cumulativeAmount !== 'string' || !/^[0-9]{1,78}$/.test(v.cumulativeAmount) || BigInt(v.cumulativeAmount) > UINT256_MAX) {
    throw new MalformedVoucherError('voucher.cumulativeAmount must be wei as a decimal string (a uint256)', 'voucher.cumulativeAmount');
  }
  if (typeof v.signature !== 'string' || !/^0x[0-9a-fA-F]{130}$/.test(v.signature)) throw new MalformedVoucherError('voucher.signature must be a 65-byte hex signature', 'voucher.signature');
  const ids = body.requestIds;
  if (!Array.isArray(ids) || ids.length === 0 || ids.length > MAX_REQUEST_IDS || !ids.every((id) => typeof id === 'string' && id.length > 0 && id.length <= MAX_REQUEST_ID_LENGTH)) {
    throw new MalformedVoucherError(`requestIds must be 1 to ${MAX_REQUEST_IDS} request ids (strings of at most ${MAX_REQUEST_ID_LENGTH} characters)`, 'requestIds');
  }
  return {
    voucher: { client: getAddress(v.client), cumulativeAmount: BigInt(v.cumulativeAmount), signature: v.signature as Hex },
    requestIds: ids as string[],
  };
}

export function voucherHandlers(settlement: GridSettlement): ApiHandler[] {
  const { ledger } = settlement;
  return [
    {
      method: 'POST',
      path: '/api/vouchers',
      async handle(_req, body) {
        const { voucher, requestIds } = parseVoucherBody(body);
        let amount: bigint;
        try {
          amount = await settlement.clientVoucher(voucher, requestIds);
        } catch (err) {
          if (err instanceof Error && REFUSALS.includes(err.name)) throw new VoucherRefusedError(err);
          throw err;
        }
        return jsonResponse({ object: 'voucher', client: voucher.client, cumulativeAmount: voucher.cumulativeAmount.toString(), amount: amount.toString(), requestIds });
      },
    },
    {
      method: 'GET',
      path: '/api/vouchers/*',
      handle(req) {
        const address = pathParameter(req.url, '/api/vouchers/', 'client');
        if (!isAddress(address, { strict: false })) throw new MalformedVoucherError(`${JSON.stringify(address)} is not an address: GET /api/vouchers/<0x address>`, 'client');
        const client: Address = getAddress(address);
        const latest = ledger.latestVoucher(client);
        return jsonResponse({ object: 'voucher.latest', client, cumulativeAmount: (latest?.cumulativeAmount ?? 0n).toString(), redeemed: (latest?.redeemed ?? 0n).toString() });
      },
    },
  ];
}
