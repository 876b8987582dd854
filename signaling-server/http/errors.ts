/**
 * Failures the server's HTTP side answers with a status of their own. server.ts turns them
 * (and UsageError, as 400) into OpenAI-shaped JSON errors; handlers throw them.
 */
import { InfermeshError, type InfermeshErrorOptions } from '../../shared/errors.ts';

/** A failure with an HTTP status, and OpenAI's error `type` and `code` for the JSON body. */
export class HttpError extends InfermeshError {
  override name = 'HttpError';
  readonly status: number;
  readonly type: string;
  readonly code: string | null;
  /** the request parameter at fault, if one is */
  readonly param: string | null;

  constructor(status: number, message: string, options: InfermeshErrorOptions & { type?: string; code?: string | null; param?: string } = {}) {
    super(message, options);
    this.status = status;
    this.type = options.type ?? (status >= 500 ? 'server_error' : 'invalid_request_error');
    this.code = options.code ?? null;
    this.param = options.param ?? null;
  }
}

/** A request body over the server's limit (413). */
export class RequestTooLargeError extends HttpError {
  override name = 'RequestTooLargeError';
  constructor(limit: number) {
    super(413, `request body is larger than the server's limit of ${limit} bytes`, { code: 'request_too_large' });
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
    super(405, `${method} is not allowed on ${path} (allowed: ${allow.join(', ')})`, { code: 'method_not_allowed' });
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
