'use client';
// A client component streaming one reply: keys come from the route handler
// beside it (app/api/get-client-token), the effect's cleanup aborts the
// connect (or closes the connection). Writes `ok:<status>:<text>` into
// #done for run.mjs to read in headless Chromium.
import { useEffect, useState } from 'react';
import { Client } from 'tokenrelay';

export default function Chat() {
  const [done, setDone] = useState('');
  useEffect(() => {
    const controller = new AbortController();
    const params = new URLSearchParams(window.location.search);
    const client = new Client({
      wsUrl: params.get('ws'),
      getToken: async (contextId, { signal }) => {
        const r = await fetch('/api/get-client-token', { method: 'POST', body: JSON.stringify({ contextId }), signal });
        return (await r.json()).clientToken;
      },
    });
    (async () => {
      const conn = await client.connect(params.get('context'), { signal: controller.signal, timeout: 20000 });
      let text = '';
      const stream = conn.stream('[tokens=20] go', { signal: controller.signal });
      for await (const token of stream) text += token;
      setDone(`ok:${stream.response.status}:${text}`);
    })().catch((e) => {
      if (e.name !== 'AbortError') setDone(`error:${e.name}:${e.message}`);
    });
    return () => controller.abort();
  }, []);
  return <p id="done">{done}</p>;
}
