// Compiled with `tsc --strict --noEmit`: a CommonJS TypeScript file
// requiring the package gets the same types (index.d.cts, server.d.cts,
// testing.d.cts).
import tokenrelay = require('tokenrelay');
import server = require('tokenrelay/server');
import testing = require('tokenrelay/testing');

const client = new tokenrelay.Client({ wsUrl: 'wss://relay.example.com/ws', getToken: async () => 'key' });
const admin = new server.AdminClient({ baseUrl: 'https://relay.example.com', apiKey: 'org-key' });
export async function run(): Promise<string> {
  const conn = await client.connect('ctx', { timeout: 1000 });
  const { token } = await admin.generateClientKey({ contextId: conn.contextId });
  let text = '';
  for await (const t of conn.stream('hi')) text += t;
  return token + text;
}

export async function withServer(): Promise<string> {
  const relay: testing.ReferenceServer = await testing.startReferenceServer({ args: ['--scripted-pace-ms', '0'] });
  await relay.stop();
  return relay.wsUrl;
}
