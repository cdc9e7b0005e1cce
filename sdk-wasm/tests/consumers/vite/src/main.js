// The page of a browser app bundled from the packed package. It gets keys
// from its backend (POST /api/get-client-token), streams one reply and
// writes `ok:<status>:<text>` (or `error:…`) into #done, which run.mjs
// reads in headless Chromium. The wasm loads by the package's default
// (`new URL(…, import.meta.url)`, which the bundler follows).
import { Client } from 'tokenrelay';

async function main() {
  const params = new URLSearchParams(location.search);
  const client = new Client({
    wsUrl: params.get('ws'),
    getToken: async (contextId, { signal }) => {
      const r = await fetch('/api/get-client-token', { method: 'POST', body: JSON.stringify({ contextId }), signal });
      return (await r.json()).clientToken;
    },
  });
  const conn = await client.connect(params.get('context'), { timeout: 20000 });
  let text = '';
  const stream = conn.stream('[tokens=20] go');
  for await (const token of stream) text += token;
  conn.close();
  return `ok:${stream.response.status}:${text}`;
}

main().then(
  (result) => { document.getElementById('done').textContent = result; },
  (e) => { document.getElementById('done').textContent = `error:${e.name}:${e.message}`; },
);
