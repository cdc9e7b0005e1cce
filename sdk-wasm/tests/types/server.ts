// Compiled with `tsc --strict --noEmit`: `tokenrelay/server` as a Next.js
// route handler uses it.
import { AdminClient, NotFoundError, type ClientKey, type Context } from 'tokenrelay/server';

const admin = new AdminClient({ baseUrl: 'https://relay.example.com', apiKey: 'org-key', timeoutMs: 5000 });

export async function POST(req: Request): Promise<Response> {
  const { contextId } = (await req.json()) as { contextId: string };
  try {
    const key: ClientKey = await admin.generateClientKey({ contextId, ttlSeconds: 120 }, { signal: req.signal });
    return Response.json({ clientToken: key.token, expiresAt: key.expiresAt });
  } catch (e) {
    if (e instanceof NotFoundError) return new Response(null, { status: 404 });
    throw e;
  }
}

export async function setup(): Promise<string> {
  const agent = await admin.createAgent({ name: 'helper', prompt: 'Be brief.' });
  const ctx: Context = await admin.createContext(agent.agentId, { promptArgs: { user: 'Ada' } });
  const { token } = await admin.streamToken({ ttl: 60 });
  const pk = await admin.createPublishableKey(['https://app.example']);
  // @ts-expect-error ttl is a number
  await admin.streamToken({ ttl: '60' });
  return `${ctx.contextId} ${token} ${pk.clientKey}`;
}
