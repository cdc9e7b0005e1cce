// Proves the floor module is a whole working core, not a stripped one: it
// drives one session through a key fetch, the connect handshake, a message
// and a streamed reply, and fails unless each step comes out as the
// browser package would see it. Usage: node run.mjs <module.wasm>
import { readFileSync } from "node:fs";
import assert from "node:assert/strict";

const bytes = readFileSync(process.argv[2]);
const out = [];
let memory;
const utf8 = new TextDecoder();
const read = (ptr, len) => utf8.decode(new Uint8Array(memory.buffer, ptr, len));
const { instance } = await WebAssembly.instantiate(bytes, {
  env: {
    out_str: (tag, ptr, len) => out.push([tag, read(ptr, len)]),
    out_num: (tag, value) => out.push([tag, value]),
    parse_float: (ptr, len) => parseFloat(read(ptr, len)),
    open_socket: () => 0,
    send_frame: (ptr, len) => {
      out.push([7, read(ptr, len)]);
      return 0;
    },
  },
});
const x = instance.exports;
memory = x.memory;
const str = (s) => {
  const b = new TextEncoder().encode(s);
  const p = x.alloc_bytes(b.length);
  new Uint8Array(memory.buffer, p, b.length).set(b);
  return [p, b.length];
};
const take = (tag) => {
  const found = out.filter(([t]) => t === tag).map(([, v]) => v);
  out.length = 0;
  return found;
};

let now = 1;
x.new(...str("ws://relay.invalid/ws"), ...str("ctx-1"), ...str(""), 0, 7);
x.start(now);
assert.deepEqual(take(2), ["ctx-1"], "asks for a key for the context");
const none = () => str("");
x.token(1, 0, ...str("key-1"), ...none(), ...none(), NaN, now, 1_700_000_000);
assert.deepEqual(take(3), ["ws://relay.invalid/ws"], "opens the socket");
x.opened(now);
const [connect] = take(7).map((f) => JSON.parse(f));
assert.equal(connect.method, "connect_to_context");
assert.equal(connect.params.access_token, "key-1");
x.frame(...str(JSON.stringify({ id: connect.id, result: { success: true, seq: 0,
  server: { name: "t", version: "1", capabilities: ["seq", "resume"] } } })), now);
assert.ok(take(33).includes("connected"), "attached");
const id = x.send(0, ...str("Hello"), ...str(""), now);
assert.ok(id > 0, "a request id");
const [ask] = take(7).map((f) => JSON.parse(f));
assert.equal(ask.method, "add_message");
x.frame(...str(JSON.stringify({ id: ask.id, result: { success: true, response_id: "r1" } })), now);
for (const [seq, token] of [[1, "Hi"], [2, " there"]]) {
  x.frame(...str(JSON.stringify({ method: "on_token", params: { token, response_id: "r1", seq } })), now);
}
assert.deepEqual(take(21), ["Hi", " there"], "streams the tokens");
x.frame(...str(JSON.stringify({ method: "on_stop_token", params: { response_id: "r1", seq: 3 } })), now);
assert.ok(take(72).includes("Hi there"), "completes the reply");
// The socket dies; the key fetched for the reconnect is refused for good.
x.closed(1006, ...str(""), 1, now);
const [fetch] = out.filter(([t]) => t === 1).map(([, v]) => v);
assert.ok(fetch > 0, "fetches a fresh key to reconnect");
take(0);
x.token(fetch, 2, ...str("no access"), ...str("forbidden"), ...none(), 403, now, 1_700_000_000);
assert.ok(take(33).includes("failed"), "a forbidden key fails the connection");
console.log("core-floor: the module connects, asks, streams a reply and fails on a forbidden key");
