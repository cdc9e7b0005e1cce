'use client';
// The chat page: useTokenRelay keeps a connection to this visitor's context
// (closed on unmount), useReply streams each answer into state.
import { useEffect, useState } from 'react';
import { Client } from 'tokenrelay';
import { useReply, useTokenRelay } from 'tokenrelay/react';

const client = typeof window === 'undefined' ? null : new Client({
  wsUrl: process.env.NEXT_PUBLIC_TOKENRELAY_WS ?? 'ws://127.0.0.1:8080/ws',
  getToken: async (contextId, { signal }) => {
    const r = await fetch('/api/get-client-token', { method: 'POST', body: JSON.stringify({ contextId }), signal });
    if (!r.ok) throw Object.assign(new Error(`token endpoint: HTTP ${r.status}`), { status: r.status });
    return (await r.json()).clientToken;
  },
});

export default function Chat() {
  const [contextId, setContextId] = useState(null);
  const [history, setHistory] = useState([]);
  const [input, setInput] = useState('');
  useEffect(() => {
    fetch('/api/context', { method: 'POST' }).then((r) => r.json()).then((c) => setContextId(c.contextId));
  }, []);
  const { connection, state, error } = useTokenRelay(client, contextId);
  const reply = useReply(connection);

  async function send(e) {
    e.preventDefault();
    const text = input.trim();
    if (!text) return;
    setInput('');
    setHistory((h) => [...h, { who: 'you', text }]);
    const answer = await reply.send(text);
    if (answer) setHistory((h) => [...h, { who: 'agent', text: answer.text }]);
  }

  return (
    <main>
      <h1>Chat</h1>
      <p>connection: <b id="state">{state}</b>{error && <span id="error"> ({error.message})</span>}</p>
      <ul id="history">
        {history.map((m, i) => <li key={i}><b>{m.who}:</b> {m.text}</li>)}
      </ul>
      {reply.status === 'streaming' && <p id="streaming">{reply.text}</p>}
      <form onSubmit={send}>
        <input id="message" value={input} onChange={(e) => setInput(e.target.value)} placeholder="Say something" />
        <button id="send" disabled={!connection || reply.status === 'streaming'}>Send</button>
        {reply.status === 'streaming' && <button type="button" onClick={reply.stop}>Stop</button>}
      </form>
    </main>
  );
}
