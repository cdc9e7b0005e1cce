// The package on Next.js's edge runtime (the `edge-light` entry: the .wasm
// imported with `?module`): a route that streams a reply server-side.
import { Client } from 'tokenrelay';
import { AdminClient } from 'tokenrelay/server';

export const runtime = 'edge';
export const dynamic = 'force-dynamic';

export async function GET(req) {
  const params = new URL(req.url).searchParams;
  const admin = new AdminClient({ baseUrl: process.env.RELAY_HTTP, apiKey: process.env.ORG_KEY });
  try {
    const client = new Client({
      wsUrl: params.get('ws'),
      getToken: async (contextId) => (await admin.generateClientKey({ contextId })).token,
    });
    const conn = await client.connect(params.get('context'), { timeout: 20000 });
    let text = '';
    const stream = conn.stream('[tokens=20] go');
    for await (const token of stream) text += token;
    conn.close();
    return Response.json({ text, status: stream.response.status });
  } catch (e) {
    return Response.json({ error: `${e.name}: ${e.message}` }, { status: 500 });
  }
}
