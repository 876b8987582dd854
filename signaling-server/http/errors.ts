/**
 * Failures the server's HTTP side answers with a status of their own. server.ts turns them
 * (and UsageError, as 400) into OpenAI-shaped JSON errors; handlers throw them.
 */
import { InfermeshError, type InfermeshErrorOptions } from '../../shared/errors.ts';

export interface HttpErrorOptions extends InfermeshErrorOptions {
  type?: string;
  code?: string | null;
  param?: string;
  /** response headers the status calls for (Allow, Retry-After, Connection) */
  headers?: Record<string, string>;
}

/** A failure with an HTTP status, and OpenAI's error `type` and `code` for the JSON body. */
export class HttpError extends InfermeshError {
  override name = 'HttpError';
  readonly status: number;
  readonly type: string;
  readonly code: string | null;
  /** the request parameter at fault, if one is */
  readonly param: string | null;
  readonly headers: Record<string, string>;

  constructor(status: number, message: string, options: HttpErrorOptions = {}) {
    super(message, options);
    this.status = status;
    this.type = options.type ?? (status >= 500 ? 'server_error' : 'invalid_request_error');
    this.code = options.code ?? null;
    this.param = options.param ?? null;
    this.headers = options.headers ?? {};
  }
}

/** What a client sent, quoted in an error: never more than a line of it. */
export function quoted(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
}

/** A request target (the path in the request line) that is not a URL path (400). */
export class BadRequestTargetError extends HttpError {
  override name = 'BadRequestTargetError';
  constructor(target: string, cause?: unknown) {
    super(400, `the request target ${quoted(target)} is not a URL path`, { code: 'invalid_request_target', cause });
  }
}

/** A parameter in the path that is not valid percent-encoded UTF-8 (400). */
export class InvalidPathParameterError extends HttpError {
  override name = 'InvalidPathParameterError';
  constructor(param: string, raw: string) {
    super(400, `the ${param} in the path, ${quoted(raw)}, is not percent-encoded UTF-8`, { code: 'invalid_path_parameter', param });
  }
}

/** A request the HTTP/1.1 parser could not read: no method, path or headers to act on (400, 408, 431). */
export class MalformedHttpError extends HttpError {
  override name = 'MalformedHttpError';
  constructor(status: number, message: string, cause: unknown) {
    super(status, message, { code: 'malformed_request', cause });
  }
}

/** A request body over the server's limit (413). */
export class RequestTooLargeError extends HttpError {
  override name = 'RequestTooLargeError';
  constructor(limit: number) {
    super(413, `request body is larger than the server's limit of ${limit} bytes`, { code: 'request_too_large' });
  }
}

/**
 * The server cannot take the request now but will soon (503 with Retry-After): no route yet,
 * or its budget for request bodies or generations is in use by others.
 */
export class ServiceUnavailableError extends HttpError {
  override name = 'ServiceUnavailableError';
  constructor(message: string, options: { code: string; retryAfterSeconds: number; cause?: unknown }) {
    super(503, message, { type: 'service_unavailable', code: options.code, cause: options.cause, headers: { 'retry-after': String(options.retryAfterSeconds) } });
  }
}

/** A request body or a generation slot takes seconds to free: a client told to wait one finds room. */
const BUSY_RETRY_AFTER_SECONDS = 1;

/** The server's budget for something others are using now (request bodies, generations): 503 `server_busy`. */
export class ServerBusyError extends ServiceUnavailableError {
  override name = 'ServerBusyError';
  constructor(message: string) {
    super(message, { code: 'server_busy', retryAfterSeconds: BUSY_RETRY_AFTER_SECONDS });
  }
}

/** A request body that is not JSON (400). */
export class InvalidJsonError extends HttpError {
  override name = 'InvalidJsonError';
  constructor(cause: unknown) {
    super(400, `request body is not valid JSON: ${(cause as Error).message}`, { code: 'invalid_json', cause });
  }
}

/** No API route under this path (404). */
export class RouteNotFoundError extends HttpError {
  override name = 'RouteNotFoundError';
  constructor(path: string) {
    super(404, `no API route ${path}`, { code: 'not_found' });
  }
}

/** An API route that exists for other methods (405). */
export class MethodNotAllowedError extends HttpError {
  override name = 'MethodNotAllowedError';
  readonly allow: string[];
  constructor(method: string, path: string, allow: string[]) {
    super(405, `${method} is not allowed on ${path} (allowed: ${allow.join(', ')})`, { code: 'method_not_allowed', headers: { allow: allow.join(', ') } });
    this.allow = allow;
  }
}

/** A request for a model this server does not serve (404, OpenAI's code 'model_not_found'). */
export class ModelNotFoundError extends HttpError {
  override name = 'ModelNotFoundError';
  constructor(model: string, served: string[]) {
    super(404, `the model ${JSON.stringify(model)} does not exist here; served: ${served.length ? served.join(', ') : 'none'}`, {
      code: 'model_not_found',
      param: 'model',
    });
  }
}
