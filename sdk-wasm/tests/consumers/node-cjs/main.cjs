// The same as node-esm, written as CommonJS: `require('tokenrelay')` gets
// the package's CJS build (pkg/node.cjs), on every Node from 18.
const { Client } = require('tokenrelay');
const { AdminClient, NotFoundError } = require('tokenrelay/server');

const WebSocket = globalThis.WebSocket ?? require('ws');

async function main() {
  const admin = new AdminClient({ baseUrl: process.env.RELAY_HTTP, apiKey: process.env.ORG_KEY });
  const agent = await admin.createAgent({ name: 'consumer' });
  const { contextId } = await admin.createContext(agent.agentId);
  const client = new Client({
    wsUrl: process.env.RELAY_WS,
    WebSocket,
    getToken: async (ctx) => (await admin.generateClientKey({ contextId: ctx })).token,
  });
  const conn = await client.connect(contextId, { timeout: 20000 });
  let text = '';
  const stream = conn.stream('[tokens=20] go');
  for await (const token of stream) text += token;
  conn.close();
  const missing = await admin.getContext('no-such-context').catch((e) => e);
  console.log(JSON.stringify({
    text,
    status: stream.response.status,
    notFound: missing instanceof NotFoundError,
    native: globalThis.WebSocket === WebSocket,
  }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
