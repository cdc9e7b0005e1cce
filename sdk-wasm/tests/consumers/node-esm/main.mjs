// A Node backend-and-client script as a user writes it, from the packed
// package: `tokenrelay/server` creates a context and mints keys, the
// client streams a reply. Prints one JSON line; exits non-zero on failure.
// Env: RELAY_HTTP, RELAY_WS, ORG_KEY (run.mjs sets them).
import { Client, TimeoutError } from 'tokenrelay';
import { AdminClient, NotFoundError } from 'tokenrelay/server';

// Node 22+ has a global WebSocket; older ones use the `ws` package.
const WebSocket = globalThis.WebSocket ?? (await import('ws')).default;
const admin = new AdminClient({ baseUrl: process.env.RELAY_HTTP, apiKey: process.env.ORG_KEY });
const agent = await admin.createAgent({ name: 'consumer' });
const { contextId } = await admin.createContext(agent.agentId);
const client = new Client({
  wsUrl: process.env.RELAY_WS,
  WebSocket,
  getToken: async (ctx) => (await admin.generateClientKey({ contextId: ctx })).token,
});
const conn = await client.connect(contextId, { timeout: 20_000 });
let text = '';
const stream = conn.stream('[tokens=20] go');
for await (const token of stream) text += token;
conn.close();
const missing = await admin.getContext('no-such-context').catch((e) => e);
console.log(JSON.stringify({
  text,
  status: stream.response.status,
  notFound: missing instanceof NotFoundError,
  timeoutClass: typeof TimeoutError,
  native: globalThis.WebSocket === WebSocket,
}));
