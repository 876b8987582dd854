/**
 * How an SDK client pays the grid for its requests (shared/grid/client.ts uses it when
 * `connect()` is given a `payer`): after each request it adds the request's cost (price per
 * layer-token × the model's layers × prompt and completion tokens, and the rows its recoveries
 * replayed) to what it owes in all, signs
 * an EIP-712 voucher for that cumulative amount with its own key and posts it with the stage
 * request ids it pays for to `POST /api/vouchers`; the server's validator then pays the stages'
 * verified work on those ids out of the voucher's money.
 *
 * The sequence continues from the server's latest accepted amount (`GET /api/vouchers/<address>`),
 * read before the first voucher and again after any refusal, so a client that reconnects, or
 * whose voucher was refused, never signs below what the server holds. Vouchers go out one at a
 * time, in the order the requests ended. The key never leaves the account; only signatures do.
 */
import { getAddress, type Address, type LocalAccount } from 'viem';
import { InfermeshError } from '../errors.ts';
import { PaymentRefusedError } from './errors.ts';
import { signVoucher, voucherDomain, type VoucherDomain } from './voucher.ts';

/** What GET /api/info says about payment when the server settles on a chain. */
export interface SettlementInfo {
  chainId: number;
  /** the Settlement contract: escrow is deposited there and vouchers are signed for it */
  contract: Address;
  /** wei per layer per token, as a decimal string */
  pricePerLayerToken: string;
  /** a JSON-RPC URL for the chain, when the server can name one that needs no secret */
  rpcUrl?: string;
}

/** A voucher the server accepted. */
export interface RequestPayment {
  client: Address;
  /** the stage request ids this voucher paid for */
  requestIds: string[];
  /** what this request cost, in wei */
  amount: bigint;
  /** everything this client has paid the grid so far, in wei (what the voucher says) */
  cumulativeAmount: bigint;
}

export interface RequestPayerOptions {
  /** the grid server's HTTP URL */
  url: string;
  /** the client's key; its address must have escrow on the contract (settlement-client.ts `deposit`) */
  account: LocalAccount;
  settlement: SettlementInfo;
  /** the model's layer count: every token of a request passes every layer once */
  nLayers: number;
  /** told of every accepted voucher */
  onPayment?: (payment: RequestPayment) => void;
  /** told of every refused voucher; without it a refusal is thrown by the client's next call */
  onPaymentError?: (err: PaymentRefusedError) => void;
}

export interface RequestPayer {
  readonly client: Address;
  readonly domain: VoucherDomain;
  /** Queues the voucher for one finished request (`tokens`: prompt plus completion tokens, plus rows replayed). */
  charge(request: { requestIds: string[]; tokens: number }): void;
  /**
   * Waits for the vouchers in flight, then throws the first refusal not yet reported (and
   * forgets the rest) unless `onPaymentError` took them. The client calls it before each request.
   */
  check(): Promise<void>;
  /** The latest cumulative amount the server accepted from this client, once the vouchers in flight are answered. */
  cumulativeAmount(): Promise<bigint>;
}

export function createRequestPayer(options: RequestPayerOptions, deps: { fetch?: typeof fetch } = {}): RequestPayer {
  const fetchFn = deps.fetch ?? fetch;
  const base = options.url.replace(/\/$/, '');
  const client = getAddress(options.account.address);
  const price = BigInt(options.settlement.pricePerLayerToken);
  const domain = voucherDomain({ chainId: options.settlement.chainId, verifyingContract: options.settlement.contract });
  /** what the server last accepted; undefined: ask it before the next voucher */
  let accepted: bigint | undefined;
  let queue: Promise<void> = Promise.resolve();
  let unreported: PaymentRefusedError[] = [];

  async function call<T>(path: string, init?: RequestInit): Promise<{ ok: true; body: T } | { ok: false; status: number | null; code: string | null; message: string }> {
    let response: Response;
    try {
      response = await fetchFn(`${base}${path}`, init);
    } catch (err) {
      return { ok: false, status: null, code: null, message: `cannot reach the grid server: ${(err as Error).message}` };
    }
    const body = (await response.json().catch(() => ({}))) as T & { error?: { message?: string; code?: string | null } };
    if (response.ok) return { ok: true, body };
    return { ok: false, status: response.status, code: body.error?.code ?? null, message: body.error?.message ?? `HTTP ${response.status}` };
  }

  function refused(err: PaymentRefusedError): void {
    accepted = undefined;
    if (options.onPaymentError) options.onPaymentError(err);
    else unreported.push(err);
  }

  async function pay(requestIds: string[], amount: bigint): Promise<void> {
    let cumulativeAmount = amount;
    try {
      if (accepted === undefined) {
        const latest = await call<{ cumulativeAmount: string }>(`/api/vouchers/${client}`);
        if (!latest.ok) {
          return refused(new PaymentRefusedError(`cannot read this client's last voucher, so request ${requestIds[0]} is unpaid: ${latest.message}`, { code: latest.code, status: latest.status, requestIds, cumulativeAmount: 0n }));
        }
        accepted = BigInt(latest.body.cumulativeAmount);
      }
      cumulativeAmount = accepted + amount;
      const voucher = await signVoucher(options.account, domain, { client, cumulativeAmount });
      const answer = await call('/api/vouchers', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ voucher: { client, cumulativeAmount: cumulativeAmount.toString(), signature: voucher.signature }, requestIds }),
      });
      if (!answer.ok) {
        return refused(new PaymentRefusedError(`the grid refused the voucher for ${cumulativeAmount} wei (request ${requestIds[0]} is unpaid): ${answer.message}`, { code: answer.code, status: answer.status, requestIds, cumulativeAmount }));
      }
      accepted = cumulativeAmount;
      options.onPayment?.({ client, requestIds, amount, cumulativeAmount });
    } catch (err) {
      // Signing failed, or the answer was not what the server sends: the request is unpaid all the same.
      refused(new PaymentRefusedError(`the voucher for request ${requestIds[0]} was not sent: ${(err as Error).message}`, { code: err instanceof InfermeshError ? err.name : null, status: null, requestIds, cumulativeAmount }, { cause: err }));
    }
  }

  return {
    client,
    domain,
    charge({ requestIds, tokens }) {
      if (tokens <= 0 || requestIds.length === 0) return;
      const amount = price * BigInt(options.nLayers) * BigInt(tokens);
      if (amount === 0n) return;
      queue = queue.then(() => pay(requestIds, amount));
    },
    async check() {
      await queue;
      const [first] = unreported;
      unreported = [];
      if (first) throw first;
    },
    async cumulativeAmount() {
      await queue;
      if (accepted === undefined) {
        const latest = await call<{ cumulativeAmount: string }>(`/api/vouchers/${client}`);
        if (!latest.ok) throw new PaymentRefusedError(`cannot read this client's last voucher: ${latest.message}`, { code: latest.code, status: latest.status, requestIds: [], cumulativeAmount: 0n });
        accepted = BigInt(latest.body.cumulativeAmount);
      }
      return accepted;
    },
  };
}
