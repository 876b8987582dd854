/**
 * The errors of settlement, one class per failure with a stable `name` (see shared/errors.ts).
 * The browser SDK meets the voucher errors; the coordinator (signaling-server/settle/) meets all
 * of them. A contract revert keeps the Solidity custom error's name in `errorName`.
 */
import { InfermeshError, type InfermeshErrorOptions } from '../errors.ts';

/** Settlement.sol (or another source) did not compile; `source` is `file:line:column`. */
export class SolidityCompileError extends InfermeshError {
  override name = 'SolidityCompileError';
  readonly file: string;
  readonly line?: number;
  readonly column?: number;

  constructor(shortMessage: string, where: { file: string; line?: number; column?: number }, options: InfermeshErrorOptions = {}) {
    const source = where.line === undefined ? where.file : `${where.file}:${where.line}:${where.column ?? 1}`;
    super(shortMessage, { source, ...options });
    this.file = where.file;
    this.line = where.line;
    this.column = where.column;
  }
}

/** A voucher whose signature does not recover to the client it names (forged or corrupted). */
export class VoucherSignatureError extends InfermeshError {
  override name = 'VoucherSignatureError';
}

/** A voucher whose cumulative amount is not above the one already accepted (stale or replayed). */
export class VoucherAmountError extends InfermeshError {
  override name = 'VoucherAmountError';
}

/** A voucher asking more than the client's escrow on chain can pay. */
export class VoucherEscrowError extends InfermeshError {
  override name = 'VoucherEscrowError';
}

/**
 * The Settlement contract refused a call. `errorName` is the Solidity custom error
 * (`BatchAlreadyPaid`, `NotCoordinator`, ...); `args` are its decoded arguments.
 */
export class SettlementRevertError extends InfermeshError {
  override name = 'SettlementRevertError';
  readonly errorName: string;
  readonly args: readonly unknown[];

  constructor(functionName: string, errorName: string, args: readonly unknown[], options: InfermeshErrorOptions = {}) {
    super(`${functionName} reverted with ${errorName}(${args.map(String).join(', ')})`, options);
    this.errorName = errorName;
    this.args = args;
  }
}

/** A transaction that failed for a reason other than a contract error (RPC down, out of gas, no funds). */
export class SettlementTransactionError extends InfermeshError {
  override name = 'SettlementTransactionError';
}

/**
 * The grid server did not take an SDK client's voucher for a request (shared/settle/request-payer.ts),
 * so that request is unpaid and its stages earn nothing for it. `code` is the server's stable
 * name for the refusal (VoucherSignatureError, VoucherAmountError, VoucherEscrowError,
 * MalformedVoucherError, ...), null when the server could not be reached.
 */
export class PaymentRefusedError extends InfermeshError {
  override name = 'PaymentRefusedError';
  readonly code: string | null;
  /** the HTTP status of the refusal, null when there was no answer */
  readonly status: number | null;
  /** the stage request ids the voucher was to pay for */
  readonly requestIds: readonly string[];
  /** the cumulative amount the refused voucher named, in wei */
  readonly cumulativeAmount: bigint;

  constructor(
    shortMessage: string,
    refusal: { code: string | null; status: number | null; requestIds: readonly string[]; cumulativeAmount: bigint },
    options: InfermeshErrorOptions = {},
  ) {
    super(shortMessage, options);
    this.code = refusal.code;
    this.status = refusal.status;
    this.requestIds = refusal.requestIds;
    this.cumulativeAmount = refusal.cumulativeAmount;
  }
}
