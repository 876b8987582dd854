/** What both SDK entries (index.ts for browsers, node.ts for Node) export besides connect(): its types and its errors, by name. */
export type { ConnectOptions, DownloadProgress, GridClient } from '../../shared/grid/client.ts';
export { GridApiError, LayersUncoveredError } from '../../shared/grid/client.ts';
export { InfermeshError, PackageError, UsageError } from '../../shared/errors.ts';
export type { GeneratedToken, GenerateOptions } from '../../shared/runtime/pipeline.ts';
export type { RequestPayment, SettlementInfo } from '../../shared/settle/request-payer.ts';
export { PaymentRefusedError } from '../../shared/settle/errors.ts';
