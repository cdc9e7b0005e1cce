// The "get client token" endpoint of the two-endpoint pattern: the org key
// stays here; the browser gets a short-lived key scoped to its context.
import { AdminClient } from 'tokenrelay/server';

export const dynamic = 'force-dynamic';

export async function POST(req) {
  const admin = new AdminClient({ baseUrl: process.env.RELAY_HTTP, apiKey: process.env.ORG_KEY });
  const { contextId } = await req.json();
  // A real app checks here that the signed-in user may use contextId.
  const { token } = await admin.generateClientKey({ contextId, ttlSeconds: 120 });
  return Response.json({ clientToken: token });
}
