// The backend's admin client: the org key stays on the server. Made on
// first use, so `next build` (which loads the route modules) needs no key.
import { AdminClient } from 'tokenrelay/server';

let client = null;
/** The admin client, from TOKENRELAY_URL and TOKENRELAY_ORG_KEY. */
export function admin() {
  client ??= new AdminClient({
    baseUrl: process.env.TOKENRELAY_URL ?? 'http://127.0.0.1:8080',
    apiKey: process.env.TOKENRELAY_ORG_KEY,
  });
  return client;
}

let agentId = null;
/** The example's one agent, created on first use. */
export async function agent() {
  agentId ??= (await admin().createAgent({
    name: 'nextjs-chat',
    description: 'the Next.js example',
    prompt: process.env.TOKENRELAY_PROMPT ?? 'You are a helpful assistant.',
  })).agentId;
  return agentId;
}
