/** Calls to the grid server's JSON API (/api/info, /api/route) by clients and donors: its errors arrive typed, with status and code. */
import { InfermeshError } from '../errors.ts';
import type { InfermeshErrorOptions } from '../errors.ts';

/** The server answered an API call with an error (its message, status and code are passed on), or could not be reached. */
export class GridApiError extends InfermeshError {
  override name = 'GridApiError';
  /** the HTTP status, undefined when the server could not be reached */
  readonly status?: number;
  /** the error body's `code`, e.g. 'no_route' while no chain of stages covers the model */
  readonly code?: string;

  constructor(message: string, options: InfermeshErrorOptions & { status?: number; code?: string } = {}) {
    super(message, options);
    this.status = options.status;
    this.code = options.code;
  }
}

/** A GET of `path` on the server at `base` (no trailing slash), as JSON. */
export function gridApi(base: string, fetchFn: typeof fetch = fetch) {
  return async <T>(path: string): Promise<T> => {
    const response = await fetchFn(`${base}${path}`).catch((err: unknown) => {
      const cause = (err as { cause?: { code?: string } }).cause?.code;
      throw new GridApiError(`cannot reach the grid server: ${(err as Error).message}${cause ? ` (${cause})` : ''}`, { source: `${base}${path}`, cause: err });
    });
    const body = (await response.json().catch(() => undefined)) as (T & { error?: { message?: string; code?: string | null } }) | undefined;
    if (!response.ok) throw new GridApiError(body?.error?.message ?? `HTTP ${response.status}`, { source: `${base}${path}`, status: response.status, code: body?.error?.code ?? undefined });
    if (body === undefined) throw new GridApiError('answered with something that is not JSON: is this an infermesh grid?', { source: `${base}${path}`, status: response.status });
    return body;
  };
}
