/** What both SDK entries (browser.ts for browsers, node.ts for Node) export besides connect(): its types and its errors, by name. */
export type { ConnectOptions, DownloadProgress, GridClient } from '../../../shared/grid/client.ts';
export { GridApiError, LayersUncoveredError } from '../../../shared/grid/client.ts';
export { InfermeshError, PackageError, UsageError } from '../../../shared/errors.ts';
export type { GeneratedToken, GenerateOptions } from '../../../shared/runtime/pipeline.ts';
export type { RequestPayment, SettlementInfo } from '../../../shared/settle/request-payer.ts';
export { PaymentRefusedError } from '../../../shared/settle/errors.ts';
/** The Settlement contract's ABI, typed for viem: a payer deposits escrow with `writeContract({ address: grid.settlement.contract, abi: settlementAbi, functionName: 'deposit', value })`. */
export { settlementAbi } from '../../../shared/settle/abi.ts';
export type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionCreateParams,
  Completion,
  CompletionCreateParams,
  FinishReason,
  RequestOptions,
  Usage,
} from '../../../shared/openai/types.ts';
