// Compiled with `tsc --strict --noEmit`: the public types as an app uses
// them. Lines marked @ts-expect-error must stay errors.
import {
  Client, ForbiddenError, TokenRelayError, TimeoutError, TokenStream, init, initSync,
  type ConnectionEvent, type AgentResponse, type ConnectOptions,
} from 'tokenrelay';

async function main(): Promise<void> {
  const client = new Client({
    wsUrl: 'wss://relay.example.com/ws',
    getToken: async (contextId: string, { signal }) => {
      const r = await fetch('/api/token', { method: 'POST', body: contextId, signal });
      return (await r.json()).clientToken as string;
    },
    requestTimeoutMs: 10_000,
    invocationTimeoutMs: 60_000,
    reconnectMinDelayMs: 250,
    reconnectMaxDelayMs: 10_000,
    maxReconnectAttempts: 20,
    logger: console,
  });
  // The DOM's Response and Event are still the DOM's in this file.
  const domResponse: Response = new Response('x');
  const domEvent: Event = new Event('x');
  void domResponse; void domEvent;
  await init();
  await init({ module: fetch('/tokenrelay_wasm_bg.wasm') });
  initSync({ module: new Uint8Array(8) });
  const controller = new AbortController();
  const options: ConnectOptions = { signal: controller.signal, timeout: 5000 };
  const conn = await client.connect('ctx', options);
  try {
    await client.connect('ctx', { signal: AbortSignal.timeout(1000) });
  } catch (e) {
    if (e instanceof TimeoutError) console.log(e.cause);
    if (e instanceof DOMException && e.name === 'AbortError') console.log('aborted');
  }
  const stream: TokenStream = conn.stream('Hello', { signal: controller.signal });
  for await (const token of stream) {
    const t: string = token;
    console.log(t.length);
  }
  const finished: AgentResponse | null = stream.response;
  console.log(finished?.status, stream.requestId + 1);
  const stopped = conn.ask('Hi', { signal: controller.signal });
  const off = conn.on('token', ({ responseId, token }) => console.log(responseId, token.length));
  off();
  conn.on('state', ({ state, attempt, retryIn, cause }) => {
    const s: 'connected' | string = state;
    console.log(s, attempt + 1, retryIn ?? 0, cause?.code);
  });
  await stopped.catch(() => {});
  const reply = conn.ask('Hello');
  const id: number = reply.requestId;
  const r: AgentResponse = await reply;
  console.log(id, r.text.toUpperCase(), r.status === 'interrupted');
  // The README's tool loop.
  let turn: AgentResponse = r;
  while (turn.clientSideToolCalls.length > 0) {
    turn = await conn.sendToolResponses(turn.clientSideToolCalls.map((call) => ({
      toolCallId: call.tool_call_id,
      response: `ran ${call.tool_name}`,
    })));
  }
  for await (const ev of conn) {
    narrow(ev);
  }
  try {
    await conn.stop();
  } catch (e) {
    if (e instanceof ForbiddenError) console.log(e.code === 'forbidden');
    if (e instanceof TokenRelayError) console.log(e.serverCode, e.status);
  }
  // @ts-expect-error an unknown event type
  conn.on('tokens', () => {});
  // @ts-expect-error ask takes a string
  await conn.ask(42);
  // @ts-expect-error the timeout is a number of milliseconds
  await client.connect('ctx', { timeout: '5s' });
  // @ts-expect-error a logger needs debug()
  new Client({ wsUrl: 'ws://x', getToken: () => 't', logger: {} });
  conn.close();
}

function narrow(ev: ConnectionEvent): void {
  switch (ev.type) {
    case 'token':
      console.log(ev.token);
      break;
    case 'response':
      console.log(ev.response.toolCalls.map((c) => c.toolName));
      break;
    case 'request_failed':
      console.log(ev.requestId, ev.error.message);
      break;
    case 'state':
      // @ts-expect-error a state event has no token
      console.log(ev.token);
      break;
    default:
      break;
  }
}

void main;
