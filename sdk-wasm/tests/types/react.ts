// Compiled with `tsc --strict --noEmit`: `tokenrelay/react` as a component
// uses it (the hooks' types need no React types).
import { Client, type AgentResponse } from 'tokenrelay';
import { useReply, useTokenRelay } from 'tokenrelay/react';

const client = new Client({ wsUrl: 'wss://relay.example.com/ws', getToken: async () => 'key' });

export function Chat(contextId: string): string {
  const { connection, state, error } = useTokenRelay(client, contextId, { timeout: 10_000 });
  const { text, status, send, stop } = useReply(connection);
  if (state === 'connected' && status === 'idle') {
    void send('Hello').then((r: AgentResponse | null) => r?.text);
  }
  if (status === 'streaming') stop();
  // @ts-expect-error send takes a string
  void send(42);
  return `${state} ${error?.message ?? ''} ${text}`;
}
