// The page of a browser app bundled from the packed package. It gets keys
// from its backend (POST /api/get-client-token), streams one reply and
// writes `ok:<status>:<text>` (or `error:…`) into #done, which run.mjs
// reads in headless Chromium. The wasm is loaded by the app itself,
// from the URL of `tokenrelay/wasm`, which esbuild's file loader emits
// (esbuild does not follow `new URL(…, import.meta.url)`): `init({ module })`.
import { Client, init } from 'tokenrelay';
import wasmUrl from 'tokenrelay/wasm';

async function main() {
  await init({ module: fetch(wasmUrl) });
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
