// Types of `tokenrelay/server`, written by hand: the REST calls a backend
// makes to mint browser credentials (docs/protocol.md §4). No wasm.

export {
  TokenRelayError, UnauthorizedError, ForbiddenError, NotFoundError, RateLimitedError,
  PaymentRequiredError, InvalidRequestError, ServerError, ProtocolError, TimeoutError,
  ConnectionLostError, ClosedError, TokenProviderError, ExpiredTokenError, TransportError,
  QueueFullError, QueueExpiredError, ClosedBeforeSentError, ConfigError, EventsDroppedError, PanicError, ErrorCode, Json,
} from './index.js';
import type { Json } from './index.js';

export interface AdminClientOptions {
  /** The server's HTTP(S) origin, `https://relay.example.com`. */
  baseUrl: string;
  /** An org API key (keep it on the server), or a user access token / API
   * key (then pass `orgId` to `generateClientKey`). */
  apiKey: string;
  /** A `fetch` to use instead of the global one. */
  fetch?: (input: string, init: RequestInit) => Promise<globalThis.Response>;
  /** Per request, in milliseconds (default 30,000); past it a call rejects
   * with a `TimeoutError`. */
  timeoutMs?: number;
}

/** Per call: `signal` cancels the request (it rejects with `signal.reason`). */
export interface CallOptions {
  signal?: AbortSignal;
}

export interface NewAgent {
  name: string;
  description?: string;
  /** The system prompt; `{name}` placeholders are filled by a context's
   * `promptArgs`. */
  prompt?: string;
  isPublic?: boolean;
  speaksFirst?: boolean;
  tools?: Json[];
}

export interface Agent {
  agentId: string;
  orgId: string;
  name: string;
  isPublic: boolean;
}

export interface NewContext {
  /** Make the agent speak first before `createContext` returns. */
  invokeAgent?: boolean;
  promptArgs?: { [key: string]: Json };
  userDefined?: { [key: string]: Json };
}

export interface Context {
  contextId: string;
  agentId: string;
  /** The history, entries as the server sent them. */
  messages: Json[];
  userDefined: Json;
  /** Unix seconds. */
  createdAt: number | null;
  updatedAt: number | null;
  /** On another org's public agent: a client key scoped to the context. */
  clientApiKey?: string;
}

export interface ClientKey {
  /** The JWT: what `getToken` returns to the browser. */
  token: string;
  apiKeyId: string;
  orgId: string;
  /** Unix seconds, read from the JWT. */
  expiresAt: number | null;
}

export interface StreamToken {
  /** `pub_tok_…`: what `getToken` returns as `{ streamToken }`. */
  token: string;
  /** Its lifetime in seconds. */
  ttl: number;
}

export interface PublishableKey {
  /** `pk_…`: the `clientKey` option of the browser `Client`. */
  clientKey: string;
  allowedOrigins: string[];
}

/** A typed client of the REST routes a backend needs to let browsers
 * connect: create an agent and a context, mint a client key scoped to a
 * context, a single-use stream token, a publishable key. Failures reject
 * with the package's error classes (`ForbiddenError`, `NotFoundError`, …;
 * `serverCode` and `status` say what the server sent).
 *
 * ```ts
 * // app/api/get-client-token/route.ts (Next.js)
 * import { AdminClient } from 'tokenrelay/server';
 * const admin = new AdminClient({ baseUrl: process.env.RELAY_URL!, apiKey: process.env.ORG_API_KEY! });
 * export async function POST(req: Request) {
 *   const { contextId } = await req.json();
 *   // check that the signed-in user may use contextId, then:
 *   const { token } = await admin.generateClientKey({ contextId });
 *   return Response.json({ clientToken: token });
 * }
 * ```
 */
export declare class AdminClient {
  /** @throws TypeError when an option has the wrong type. */
  constructor(options: AdminClientOptions);
  readonly baseUrl: string;
  /** `POST /agent`. */
  createAgent(agent: NewAgent, options?: CallOptions): Promise<Agent>;
  /** `POST /context`: a conversation with agent `agentId`. */
  createContext(agentId: string, params?: NewContext, options?: CallOptions): Promise<Context>;
  /** `GET /context/{id}`. */
  getContext(contextId: string, options?: CallOptions): Promise<Context>;
  /** `DELETE /context/{id}`. */
  deleteContext(contextId: string, options?: CallOptions): Promise<void>;
  /** `POST /generate-api-key`: a short-lived client key, scoped to
   * `contextId` when given. `orgId` defaults to the org key's org;
   * `ttlSeconds` to the server's default (120). */
  generateClientKey(
    params: { contextId?: string; ttlSeconds?: number; orgId?: string },
    options?: CallOptions,
  ): Promise<ClientKey>;
  /** `GET /api/v1/token`: a single-use stream token living `ttl` seconds
   * (1–300, default 60). */
  streamToken(params?: { ttl?: number }, options?: CallOptions): Promise<StreamToken>;
  /** `POST /client-key`: creates or rotates the org's publishable key. */
  createPublishableKey(allowedOrigins: string[], options?: CallOptions): Promise<PublishableKey>;
}
