// Types of `tokenrelay/react`, written by hand.
import type { AgentResponse, Client, Connection, ConnectionState, ResponseStatus, TokenRelayError } from './index.js';

export interface UseTokenRelay {
  /** Null until attached (and again after the context changes). */
  connection: Connection | null;
  /** `"idle"` without a context, `"connecting"` until attached, then the
   * connection's own states. */
  state: ConnectionState | 'connecting';
  /** Why connecting failed, or why the connection ended `failed`. */
  error: TokenRelayError | Error | null;
}

/** Connects `client` to `contextId` while the component is mounted; the
 * connect is aborted (or the connection closed) on unmount and when the
 * context changes. Make `client` once, outside the component. */
export declare function useTokenRelay(
  client: Client | null | undefined,
  contextId: string | null | undefined,
  options?: { timeout?: number },
): UseTokenRelay;

export interface UseReply {
  /** The reply's text so far. */
  text: string;
  status: 'idle' | 'streaming' | 'error' | ResponseStatus;
  /** The whole reply once it ended. */
  response: AgentResponse | null;
  error: unknown;
  /** Sends a message; resolves with the whole reply, or null when it
   * failed or was stopped. Never rejects. */
  send(text: string): Promise<AgentResponse | null>;
  /** Stops the reply streaming now (it ends `"stopped"` on the server). */
  stop(): void;
}

/** One reply at a time on `connection`, streaming into state. */
export declare function useReply(connection: Connection | null): UseReply;
