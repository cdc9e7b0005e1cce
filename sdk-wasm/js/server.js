// `tokenrelay/server`: the REST calls an app's backend makes to mint the
// credentials its browsers connect with (docs/protocol.md §4), over the
// runtime's own `fetch`. No wasm: it runs in Node 18+, Deno, Bun, edge
// runtimes and Next.js route handlers. Failures are the package's error
// classes, classified as the Rust core's admin client does (the body's
// `code`, else the HTTP status).

import { ProtocolError, TimeoutError, TransportError, ConfigError, toError } from './errors.js';

export * from './errors.js';

// A failed answer becomes one of the core's error kinds (`Error::kind()`,
// the `code` of every error this package throws), and `toError` makes the
// kind's class from the one kind-to-class table (errors.js), the one the
// browser client's errors go through too: this file names no error class
// of its own. The rule is the Rust admin client's (sdk-core/src/error.rs,
// `kind_from_code`, then `kind_from_status`).

/** The server's `code`s, and the kind each stands for. */
const KIND_OF_CODE = {
  unauthorized: 'unauthorized', token_expired: 'unauthorized', invalid_token: 'unauthorized',
  forbidden: 'forbidden', MISSING_CLIENT_KEY: 'forbidden', INVALID_CLIENT_KEY: 'forbidden',
  CLIENT_KEY_MISMATCH: 'forbidden',
  not_found: 'not_found',
  rate_limited: 'rate_limited',
  payment_required: 'payment_required', invalid_billing: 'payment_required',
  invalid_params: 'invalid_request', conflict: 'invalid_request', too_large: 'invalid_request',
  internal: 'server', internal_server_error: 'server', unavailable: 'server',
};

/** The kind an HTTP status stands for, or null (a plain `TokenRelayError`). */
function kindOfStatus(status) {
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  if (status === 404) return 'not_found';
  if (status === 429) return 'rate_limited';
  if (status === 402) return 'payment_required';
  if (status === 400 || status === 409 || status === 413 || status === 422) return 'invalid_request';
  if (status >= 500) return 'server';
  return null;
}

/** The error a failed answer stands for: `{error, code}` (the reference
 * server), `{detail}` (FastAPI) or `{error: "CODE", message}`. */
function httpError(what, status, body, text, retryAfter) {
  let code = typeof body?.code === 'string' ? body.code : null;
  let message = typeof body?.error === 'string' ? body.error
    : typeof body?.detail === 'string' ? body.detail : null;
  if (code === null && message !== null && /^[A-Z][A-Z0-9_]+$/.test(message)) {
    code = message;
    message = typeof body?.message === 'string' ? body.message : null;
  }
  message ??= typeof body?.message === 'string' ? body.message : (text.trim().slice(0, 200) || `HTTP ${status}`);
  const kind = (code && Object.hasOwn(KIND_OF_CODE, code) && KIND_OF_CODE[code]) || kindOfStatus(status);
  const d = { code: kind ?? undefined, message: `${what}: ${message}`, serverCode: code, status };
  if (kind === 'rate_limited' && retryAfter !== null) d.retryAfterMs = retryAfter * 1000;
  return toError(d);
}

/** The claims of a JWT, or null when `token` is not one (a user API key). */
function claims(token) {
  const part = token.split('.')[1];
  if (!part) return null;
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)));
  } catch {
    return null;
  }
}

function describe(v) {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v;
}

function checkString(what, v) {
  if (typeof v !== 'string' || v === '') throw new TypeError(`${what} must be a non-empty string, got ${describe(v)}`);
}

/** A context as the server sent it, with camelCase names. */
function context(r) {
  const c = {
    contextId: r.context_id,
    agentId: r.agent_id,
    messages: r.messages ?? [],
    userDefined: r.user_defined ?? null,
    createdAt: r.created_at ?? null,
    updatedAt: r.updated_at ?? null,
  };
  if (typeof r.client_api_key === 'string') c.clientApiKey = r.client_api_key;
  return c;
}

/** A typed client of the tokenrelay REST surface for backends: create an
 * agent and a context, mint a client key scoped to a context or a
 * single-use stream token. Keep the org key on the server; hand browsers
 * only what these methods mint. */
export class AdminClient {
  #baseUrl;
  #apiKey;
  #fetch;
  #timeoutMs;

  /** `baseUrl`: the server's HTTP(S) origin (`https://relay.example.com`);
   * `apiKey`: an org API key (or a user access token / API key; then pass
   * `orgId` to `generateClientKey`); `fetch`: a fetch to use instead of
   * the global one; `timeoutMs`: per request (default 30,000). */
  constructor(options) {
    if (options == null || typeof options !== 'object') {
      throw new TypeError(`new AdminClient(options): options must be an object {baseUrl, apiKey}, got ${describe(options)}`);
    }
    const { baseUrl, apiKey, fetch: f, timeoutMs } = options;
    if (typeof baseUrl !== 'string' || !/^https?:\/\//i.test(baseUrl)) {
      throw new TypeError(`options.baseUrl must be an http:// or https:// URL string, got ${typeof baseUrl === 'string' ? JSON.stringify(baseUrl) : describe(baseUrl)}`);
    }
    checkString('options.apiKey', apiKey);
    if (f !== undefined && typeof f !== 'function') throw new TypeError(`options.fetch must be a function, got ${describe(f)}`);
    if (f === undefined && typeof globalThis.fetch !== 'function') {
      throw new TypeError('there is no global fetch here (Node 18+ has one): pass options.fetch');
    }
    if (timeoutMs !== undefined && !(typeof timeoutMs === 'number' && timeoutMs > 0)) {
      throw new TypeError(`options.timeoutMs must be a positive number of milliseconds, got ${describe(timeoutMs)}`);
    }
    this.#baseUrl = baseUrl.replace(/\/+$/, '');
    this.#apiKey = apiKey;
    this.#fetch = f ?? ((...args) => globalThis.fetch(...args));
    this.#timeoutMs = timeoutMs ?? 30_000;
  }

  /** The server's base URL. */
  get baseUrl() { return this.#baseUrl; }

  /** `POST /agent`: creates an agent in the key's org. */
  createAgent(agent, options) {
    if (agent == null || typeof agent !== 'object') throw new TypeError(`createAgent(agent): agent must be an object, got ${describe(agent)}`);
    checkString('createAgent(agent): agent.name', agent.name);
    const body = {
      agent_name: agent.name,
      agent_description: agent.description ?? '',
      prompt: agent.prompt ?? '',
      is_public: agent.isPublic ?? false,
    };
    if (agent.speaksFirst !== undefined) body.agent_speaks_first = agent.speaksFirst;
    if (agent.tools !== undefined) body.tools = agent.tools;
    return this.#request('POST', ['agent'], body, options).then((r) => ({
      agentId: r.agent_id, orgId: r.org_id, name: r.agent_name, isPublic: r.is_public,
    }));
  }

  /** `POST /context`: starts a conversation with agent `agentId`. */
  createContext(agentId, params = {}, options) {
    checkString('createContext(agentId)', agentId);
    const body = { agent_id: agentId };
    if (params.invokeAgent !== undefined) body.invoke_agent_message = params.invokeAgent;
    if (params.promptArgs !== undefined) body.prompt_args = params.promptArgs;
    if (params.userDefined !== undefined) body.user_defined = params.userDefined;
    return this.#request('POST', ['context'], body, options).then(context);
  }

  /** `GET /context/{id}`: the context with its history. */
  getContext(contextId, options) {
    checkString('getContext(contextId)', contextId);
    return this.#request('GET', ['context', contextId], undefined, options).then(context);
  }

  /** `DELETE /context/{id}`. */
  deleteContext(contextId, options) {
    checkString('deleteContext(contextId)', contextId);
    return this.#request('DELETE', ['context', contextId], undefined, options).then(() => undefined);
  }

  /** `POST /generate-api-key`: a short-lived client key for a browser,
   * scoped to `contextId` (what a `getToken` endpoint returns). `orgId`
   * defaults to the org key's own org; `ttlSeconds` to the server's (120). */
  generateClientKey(params, options) {
    if (params == null || typeof params !== 'object') throw new TypeError(`generateClientKey(params): params must be an object {contextId}, got ${describe(params)}`);
    const { contextId, ttlSeconds } = params;
    if (contextId !== undefined) checkString('generateClientKey(params): params.contextId', contextId);
    if (ttlSeconds !== undefined && !(Number.isInteger(ttlSeconds) && ttlSeconds > 0)) {
      throw new TypeError(`generateClientKey(params): params.ttlSeconds must be a positive integer, got ${describe(ttlSeconds)}`);
    }
    const orgId = params.orgId ?? claims(this.#apiKey)?.org_id;
    if (typeof orgId !== 'string') {
      return Promise.reject(new ConfigError('generateClientKey: the API key is not an org key whose org can be read; pass params.orgId', { code: 'config' }));
    }
    const body = { org_id: orgId, type: 'client' };
    if (contextId !== undefined) body.context_id = contextId;
    if (ttlSeconds !== undefined) body.ttl_seconds = ttlSeconds;
    return this.#request('POST', ['generate-api-key'], body, options).then((r) => {
      if (typeof r?.token !== 'string') throw new ProtocolError('POST /generate-api-key: the answer has no token', { code: 'protocol' });
      return {
        token: r.token,
        apiKeyId: r.api_key_id,
        orgId: r.org_id,
        expiresAt: claims(r.token)?.exp ?? null,
      };
    });
  }

  /** `GET /api/v1/token`: a single-use stream token (`pub_tok_…`) living
   * `ttl` seconds (1–300; the server's default, 60). A `getToken` returns
   * it as `{ streamToken }`. */
  streamToken(params = {}, options) {
    const { ttl } = params;
    if (ttl !== undefined && !(Number.isInteger(ttl) && ttl >= 1 && ttl <= 300)) {
      throw new TypeError(`streamToken(params): params.ttl must be an integer from 1 to 300, got ${describe(ttl)}`);
    }
    const query = ttl === undefined ? '' : `?ttl=${ttl}`;
    return this.#request('GET', ['api', 'v1', 'token'], undefined, options, query).then((r) => {
      if (typeof r?.token !== 'string') throw new ProtocolError('GET /api/v1/token: the answer has no token', { code: 'protocol' });
      return { token: r.token, ttl: r.ttl };
    });
  }

  /** `POST /client-key`: creates (or rotates) the org's publishable key
   * (`pk_…`), allowed from these browser origins. */
  createPublishableKey(allowedOrigins, options) {
    if (!Array.isArray(allowedOrigins) || !allowedOrigins.every((o) => typeof o === 'string')) {
      throw new TypeError('createPublishableKey(allowedOrigins): allowedOrigins must be an array of origin strings');
    }
    return this.#request('POST', ['client-key'], { allowed_origins: allowedOrigins }, options)
      .then((r) => ({ clientKey: r.client_key, allowedOrigins: r.allowed_origins }));
  }

  async #request(method, path, body, options, query = '') {
    const what = `${method} /${path.join('/')}`;
    const url = `${this.#baseUrl}/${path.map(encodeURIComponent).join('/')}${query}`;
    const signal = options?.signal;
    if (signal?.aborted) throw signal.reason;
    // One controller for the timeout and the caller's signal (AbortSignal.any
    // is not in Node 18).
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; controller.abort(); }, this.#timeoutMs);
    const onAbort = () => controller.abort(signal.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    let status;
    let text;
    let retryAfter = null;
    try {
      const init = {
        method,
        headers: { authorization: `Bearer ${this.#apiKey}`, accept: 'application/json' },
        signal: controller.signal,
      };
      if (body !== undefined) {
        init.headers['content-type'] = 'application/json';
        init.body = JSON.stringify(body);
      }
      const r = await this.#fetch(url, init);
      status = r.status;
      const ra = Number(r.headers.get('retry-after'));
      if (r.headers.get('retry-after') !== null && Number.isFinite(ra)) retryAfter = ra;
      text = await r.text();
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      if (timedOut) throw new TimeoutError(`${what}: no answer within ${this.#timeoutMs} ms`, { code: 'timeout' });
      throw new TransportError(`${what}: ${e?.cause?.message ?? e?.message ?? e}`, { code: 'transport', cause: e });
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
    let json = null;
    try {
      json = text.trim() === '' ? {} : JSON.parse(text);
    } catch {
      if (status >= 200 && status < 300) {
        throw new ProtocolError(`${what}: HTTP ${status} answer is not JSON: ${text.slice(0, 200)}`, { code: 'protocol', status });
      }
    }
    if (status < 200 || status >= 300 || json?.success === false) {
      throw httpError(what, status, json, text, retryAfter);
    }
    return json;
  }
}
