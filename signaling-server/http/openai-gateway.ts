/**
 * The OpenAI-compatible HTTP gateway: `POST /v1/chat/completions`, `POST /v1/completions`
 * (server-sent events with `stream: true`, ending with `data: [DONE]`) and `GET /v1/models`,
 * as API handlers for server.ts. Each request runs on the OpenAI API object of its model
 * (shared/openai/completions.ts), which the server's entry point builds over the grid (or a
 * local pipeline) and hands in through `apiFor`. A client that disconnects aborts its
 * generation through the request's signal. At most `maxGenerations` run at once; the next
 * request is a 503 with Retry-After, so a flood of requests queues at the clients, not here.
 */
import { UsageError } from '../../shared/errors.ts';
import type { OpenAIApi } from '../../shared/openai/types.ts';
import { ModelNotFoundError, ServerBusyError } from './errors.ts';
import { pathParameter } from './request-target.ts';
import { eventStreamResponse, jsonResponse, type ApiHandler, type ApiRequest, type ApiResponse } from './server.ts';
import type { Admission, GatewayKeys } from '../api-keys/gateway-keys.ts';

export interface GatewayModel {
  /** what clients put in `model` */
  id: string;
  /** a display name */
  name: string;
  /** context window in tokens */
  contextLength: number;
}

export interface GatewayOptions {
  models(): GatewayModel[];
  /** The API of a served model, or undefined when it is not served (a 404 naming it). */
  apiFor(modelId: string): OpenAIApi | undefined;
  /** Generations running at once, streams included; default DEFAULT_MAX_GENERATIONS. */
  maxGenerations?: number;
  /** who may call, and how much (api-keys/gateway-keys.ts); default: anyone, unmetered */
  keys?: GatewayKeys;
}

/**
 * Every generation holds a KV cache on each stage of its route and a head session here; a grid
 * of tabs serves a few dozen at once at best, and more would only slow every one of them.
 */
export const DEFAULT_MAX_GENERATIONS = 64;

export interface GatewayDeps {
  /** milliseconds since the epoch, for the models' `created` */
  now?: () => number;
}

type Endpoint = 'chat' | 'text';

/** How many times a completion's route lost a stage and was replaced (a stream says so in its finishing chunk). */
export const RECOVERIES_HEADER = 'x-infermesh-recoveries';

export function createOpenAIGateway(options: GatewayOptions, deps: GatewayDeps = {}): ApiHandler[] {
  const startedAt = Math.floor((deps.now ?? Date.now)() / 1000);
  const modelObject = (m: GatewayModel) => ({ id: m.id, object: 'model', created: startedAt, owned_by: 'infermesh', name: m.name, context_length: m.contextLength });

  /** `model` picks the API; it may be left out while exactly one model is served. */
  function resolveApi(body: Record<string, unknown>): OpenAIApi {
    const served = options.models().map((m) => m.id);
    let model = body.model;
    if (model === undefined || model === null) {
      if (served.length !== 1) throw new UsageError(`is required; served: ${served.join(', ') || 'none'}`, { source: 'model' });
      model = served[0];
    }
    if (typeof model !== 'string') throw new UsageError(`must be a string, got ${typeof model}`, { source: 'model' });
    const api = options.apiFor(model);
    if (!api) throw new ModelNotFoundError(model, served);
    return api;
  }

  const maxGenerations = options.maxGenerations ?? DEFAULT_MAX_GENERATIONS;
  let generations = 0;

  /** A slot for one generation, or a 503 when all are taken; the returned release is idempotent. */
  function takeSlot(): () => void {
    if (generations >= maxGenerations) throw new ServerBusyError(`the server runs ${maxGenerations} generations at once, all busy; retry shortly`);
    generations++;
    let held = true;
    return () => {
      if (held) generations--;
      held = false;
    };
  }

  async function complete(endpoint: Endpoint, req: ApiRequest, raw: unknown): Promise<ApiResponse> {
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      throw new UsageError('the request body must be a JSON object', { source: 'body' });
    }
    // `signal` is ours to set: the client's connection, never a field of the JSON.
    const { signal: _ignored, ...body } = raw as Record<string, unknown>;
    const admission = admit(req);
    const api = resolveApi(body);
    // A metered stream reports its usage in a last chunk (charged, and passed on only when the client asked for it).
    const clientWantsUsage = (body.stream_options as { include_usage?: unknown } | undefined)?.include_usage === true;
    if (admission.key && body.stream === true) body.stream_options = { ...(body.stream_options as object), include_usage: true };
    const requestOptions = { signal: req.signal };
    const release = takeSlot();
    let result: unknown;
    try {
      result =
        endpoint === 'chat'
          ? await api.chat.completions.create(body as never, requestOptions)
          : await api.completions.create(body as never, requestOptions);
    } catch (err) {
      release();
      throw err;
    }
    if (!(Symbol.asyncIterator in (result as object))) {
      release();
      admission.charge((result as { usage?: { total_tokens?: number } }).usage?.total_tokens ?? 0);
      const recoveries = (result as { infermesh?: { recoveries: number } }).infermesh?.recoveries;
      return { ...jsonResponse(result), headers: { [RECOVERIES_HEADER]: String(recoveries ?? 0) } };
    }
    // A stream keeps its slot until its last event, or until its client leaves.
    req.signal.addEventListener('abort', release, { once: true });
    return eventStreamResponse(sseData(result as AsyncIterable<unknown>, release, admission, clientWantsUsage));
  }

  /** The request's key checked (a 401 or 429 names why not); anyone on an open gateway without one. */
  const admit = (req: ApiRequest): Admission => options.keys?.admit(req.headers) ?? { charge() {} };

  return [
    { method: 'POST', path: '/v1/chat/completions', handle: (req, body) => complete('chat', req, body) },
    { method: 'POST', path: '/v1/completions', handle: (req, body) => complete('text', req, body) },
    { method: 'GET', path: '/v1/models', handle: (req) => (admit(req), jsonResponse({ object: 'list', data: options.models().map(modelObject) })) },
    {
      method: 'GET',
      path: '/v1/models/*',
      handle: (req) => {
        admit(req);
        const id = pathParameter(req.url, '/v1/models/', 'model');
        const models = options.models();
        const model = models.find((m) => m.id === id);
        if (!model) throw new ModelNotFoundError(id, models.map((m) => m.id));
        return jsonResponse(modelObject(model));
      },
    },
  ];
}

/**
 * OpenAI's stream: one JSON chunk per event, then the literal `[DONE]`; `done` when it ends,
 * however. The usage chunk is charged to the request's key; a stream its client left before it
 * is charged a token per chunk it got.
 */
async function* sseData(chunks: AsyncIterable<unknown>, done: () => void, admission: Admission, forwardUsage: boolean): AsyncGenerator<string> {
  let sent = 0;
  try {
    for await (const chunk of chunks) {
      const usage = (chunk as { usage?: { total_tokens?: number } | null }).usage;
      if (usage && (chunk as { choices?: unknown[] }).choices?.length === 0) {
        admission.charge(usage.total_tokens ?? 0);
        if (!forwardUsage) continue;
      } else sent += 1;
      yield JSON.stringify(chunk);
    }
    yield '[DONE]';
  } finally {
    admission.charge(sent);
    done();
  }
}
