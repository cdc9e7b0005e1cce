// Compiled with `tsc --strict --noEmit`: the public types as an app uses
// them. Lines marked @ts-expect-error must stay errors.
import { Client, ForbiddenError, TokenRelayError, type Event, type Response } from 'tokenrelay';

async function main(): Promise<void> {
  const client = new Client({
    wsUrl: 'wss://relay.example.com/ws',
    getToken: async (contextId: string) => `token-for-${contextId}`,
  });
  const conn = await client.connect('ctx');
  const off = conn.on('token', ({ responseId, token }) => console.log(responseId, token.length));
  off();
  conn.on('state', ({ state, attempt, retryIn, cause }) => {
    const s: 'connected' | string = state;
    console.log(s, attempt + 1, retryIn ?? 0, cause?.code);
  });
  const reply = conn.ask('Hello');
  const id: number = reply.requestId;
  const r: Response = await reply;
  console.log(id, r.text.toUpperCase(), r.status === 'interrupted');
  // The README's tool loop.
  let turn: Response = r;
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
  conn.close();
}

function narrow(ev: Event): void {
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
