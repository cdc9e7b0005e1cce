// A Worker streaming one reply server-side through the package's `workerd`
// entry. Test only: the relay's URLs and the org key come in the query.
import { Client } from 'tokenrelay';
import { AdminClient } from 'tokenrelay/server';

export default {
  async fetch(req) {
    const q = new URL(req.url).searchParams;
    const admin = new AdminClient({ baseUrl: q.get('http'), apiKey: q.get('key') });
    try {
      const client = new Client({
        wsUrl: q.get('ws'),
        getToken: async (contextId) => (await admin.generateClientKey({ contextId })).token,
      });
      const conn = await client.connect(q.get('context'), { timeout: 20000 });
      let text = '';
      const stream = conn.stream('[tokens=20] go');
      for await (const token of stream) text += token;
      conn.close();
      return Response.json({ text, status: stream.response.status });
    } catch (e) {
      return Response.json({ error: `${e.name}: ${e.message}` }, { status: 500 });
    }
  },
};
