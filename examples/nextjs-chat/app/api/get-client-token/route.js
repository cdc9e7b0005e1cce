// Endpoint 2 of the two: a client key for the browser, living two minutes
// and scoped to one context. The package calls it on every (re)connect.
import { admin } from '../../../lib/admin.js';

export const dynamic = 'force-dynamic';

export async function POST(req) {
  const { contextId } = await req.json();
  // A real app checks here that the signed-in user owns contextId.
  const { token } = await admin().generateClientKey({ contextId, ttlSeconds: 120 });
  return Response.json({ clientToken: token });
}
