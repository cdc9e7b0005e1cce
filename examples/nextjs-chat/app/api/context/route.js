// Endpoint 1 of the two: a new conversation (context) for this visitor.
// A real app ties it to the signed-in user and stores the id.
import { admin, agent } from '../../../lib/admin.js';

export const dynamic = 'force-dynamic';

export async function POST() {
  const { contextId } = await admin().createContext(await agent());
  return Response.json({ contextId });
}
