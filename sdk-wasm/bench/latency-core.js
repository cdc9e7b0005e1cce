// The latency suite of the browser package (issue #11), host-neutral: the
// same code runs on Node (bench/latency.mjs) and inside a headless
// Chromium page, where it is loaded as a module next to the package. It
// mirrors the Rust bench (tests/e2e/benches/latency.rs):
//   first token minus the engine's pace, [tokens=3 pace_ms=20|0];
//   |gap - 20 ms| at [tokens=50 pace_ms=20]; gaps of [tokens=5000];
//   the freeze of a [tokens=200 pace_ms=2] reply cut after token 100 by
//   each server fault, with a token provider answering at once or in 100 ms.
// Every reply must arrive whole, each token (`t0 `, `t1 `, ...) exactly once
// and in order: that throws. Timings are only reported, never judged.

/** Upper bound of one reply, so a bug fails the bench instead of hanging it. */
export const WAIT_MS = 30_000;

/** Rejects after `ms` with `what`. */
export function within(promise, what, ms = WAIT_MS) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms); }),
  ]).finally(() => clearTimeout(timer));
}

/** Nearest-rank percentile, as the Rust bench computes it. */
export function pct(values, p) {
  if (values.length === 0) return NaN;
  const v = [...values].sort((a, b) => a - b);
  return v[Math.min(Math.round((p / 100) * (v.length - 1)), v.length - 1)];
}

/** One printed row: name, p50 p99 max n (ms). */
export function row(name, values) {
  const f = (x) => x.toFixed(2).padStart(8);
  return `  ${name.padEnd(52)} ${f(pct(values, 50))} ${f(pct(values, 99))} ${f(pct(values, 100))} ${String(values.length).padStart(6)}`;
}

const expectedTokens = new Map();
/** The scripted engine's tokens for `[tokens=n]`: `t0 `, …, `t{n-1}`. */
function expected(n) {
  if (!expectedTokens.has(n)) {
    expectedTokens.set(n, Array.from({ length: n }, (_, i) => (i < n - 1 ? `t${i} ` : `t${i}`)));
  }
  return expectedTokens.get(n);
}

/** Streams one reply of `n` tokens; resolves with when it was asked and
 * when each token arrived, after checking every token arrived once, in
 * order. `onToken(i)` runs as token `i` (1-based) arrives. */
async function timedReply(conn, text, n, onToken) {
  const want = expected(n);
  const arrivals = [];
  let mine = null;
  let reply = null;
  let wrong = null;
  const offStarted = conn.on('response_started', (e) => {
    if (reply && e.requestId === reply.requestId) mine = e.responseId;
  });
  const offToken = conn.on('token', (e) => {
    if (e.responseId !== mine || wrong) return;
    const t = performance.now();
    const i = arrivals.length;
    if (i >= n || e.token !== want[i]) {
      wrong = new Error(`${text}: token #${i} is ${JSON.stringify(e.token)}, expected ${i < n ? JSON.stringify(want[i]) : 'the end'} (every token exactly once, in order)`);
      return;
    }
    arrivals.push(t);
    onToken?.(i + 1);
  });
  try {
    const asked = performance.now();
    reply = conn.ask(text);
    const r = await within(reply, text);
    if (wrong) throw wrong;
    if (arrivals.length !== n) throw new Error(`${text}: ${arrivals.length} tokens, expected ${n}`);
    if (r.status !== 'complete' || r.text !== want.join('')) throw new Error(`${text}: the reply ended ${r.status}`);
    return { asked, arrivals };
  } finally {
    offStarted();
    offToken();
  }
}

const gaps = (arrivals) => arrivals.slice(1).map((t, i) => t - arrivals[i]);

/**
 * The same host without the package: a plain WebSocket speaking the
 * protocol (docs/protocol.md) by hand, to tell what the host's socket costs
 * from what the package adds. Resolves once attached, with the time that
 * took (open, `connect_to_context` answered) and `firstToken(pace)`, which
 * asks for `[tokens=3 pace_ms=<pace>]` and resolves with the time to its
 * first token once the reply is over.
 */
async function openPlain(WebSocketCtor, wsUrl, contextId, key) {
  const opened = performance.now();
  const ws = new WebSocketCtor(wsUrl);
  // Frames not yet waited for (time of arrival, frame); `next` takes the
  // first that matches, dropping those before it.
  const inbox = [];
  let waiter = null;
  let failure = null;
  const take = (match) => {
    while (inbox.length) {
      const item = inbox.shift();
      if (match(item[1])) return item;
    }
    return null;
  };
  const next = (match, what) => within(new Promise((resolve, reject) => {
    const found = take(match);
    if (found) resolve(found);
    else if (failure) reject(failure);
    else waiter = { match, resolve, reject };
  }), `plain WebSocket: ${what}`);
  ws.addEventListener('message', (e) => {
    inbox.push([performance.now(), JSON.parse(e.data)]);
    if (waiter) {
      const found = take(waiter.match);
      if (found) {
        const w = waiter;
        waiter = null;
        w.resolve(found);
      }
    }
  });
  const fail = (what) => () => {
    failure = new Error(`plain WebSocket: ${what}`);
    waiter?.reject(failure);
  };
  ws.addEventListener('error', fail('error'));
  ws.addEventListener('close', fail('closed'));
  try {
    await within(new Promise((resolve, reject) => {
      ws.addEventListener('open', resolve);
      ws.addEventListener('error', reject);
    }), 'plain WebSocket open');
    const attached = next((m) => m.id === 'c', 'connect_to_context');
    ws.send(JSON.stringify({ method: 'connect_to_context', id: 'c', params: { context_id: contextId, access_token: key } }));
    const [at, answer] = await attached;
    if (answer.error || answer.result?.success === false) throw new Error(`plain WebSocket: ${JSON.stringify(answer)}`);
    let n = 0;
    return {
      attach: at - opened,
      async firstToken(pace) {
        const asked = performance.now();
        ws.send(JSON.stringify({ method: 'add_message', id: `m${n++}`, params: { message: `[tokens=3 pace_ms=${pace}]` } }));
        const [t, m] = await next((m) => m.method === 'on_token', 'first token');
        if (m.params.token !== 't0 ') throw new Error(`plain WebSocket: first token ${JSON.stringify(m.params.token)}`);
        await next((m) => m.method === 'on_stop_token', 'reply end');
        return t - asked;
      },
      close: () => ws.close(),
    };
  } catch (e) {
    ws.close();
    throw e;
  }
}

/** `options(delayMs)` whose `getToken` times each call into `sink`. */
function timed(options, delayMs, sink) {
  const o = options(delayMs);
  const getToken = o.getToken;
  return {
    ...o,
    getToken: async (contextId) => {
      const t = performance.now();
      try {
        return await getToken(contextId);
      } finally {
        sink.push(performance.now() - t);
      }
    },
  };
}

/**
 * Runs the suite. `Client`: the package's class; `WebSocketCtor`, `wsUrl`:
 * the host's socket and the server, for the comparison without the package
 * (on `plainContextId`: a context's replies reach every socket attached);
 * `options(delayMs)`: the
 * `new Client` options, whose `getToken` mints a fresh client key per call
 * after `delayMs` (a backend's own time); `fault(kind)`: cuts the
 * context's sockets (resolves once the server did); `rounds` of each
 * first-token measure, `cuts` per fault and provider; `log(line)`: prints.
 * Resolves with the rows, `[[name, values]]`.
 */
export async function measure({ Client, WebSocketCtor, wsUrl, options, contextId, plainContextId, fault, rounds, cuts, log }) {
  const rows = [];
  const push = (name, values) => {
    rows.push([name, values]);
    log(row(name, values));
  };

  // Time to first token minus the engine's own pace; evenness. A plain
  // socket in the same host (on a context of its own) takes turns with the
  // package, round by round, so that both contexts hold as much history
  // (the server's cost of an invocation grows with it); its times are kept
  // at pace 0.
  const getToken = (ctx) => within(Promise.resolve(options(0).getToken(ctx)), 'getToken');
  let conn = await within(new Client(options(0)).connect(contextId), 'connect');
  const plain = await openPlain(WebSocketCtor, wsUrl, plainContextId, await getToken(plainContextId));
  try {
    for (const pace of [20, 0]) {
      const added = [];
      const host = [];
      for (let r = 0; r < rounds; r++) {
        const { asked, arrivals } = await timedReply(conn, `[tokens=3 pace_ms=${pace}]`, 3);
        added.push(arrivals[0] - asked - pace);
        const t = await plain.firstToken(pace);
        if (pace === 0) host.push(t);
      }
      push(`first token - pace (pace ${pace} ms)`, added);
      if (pace === 0) push('  plain WebSocket, no SDK: first token (pace 0)', host);
    }
    const jitter = [];
    for (let r = 0; r < Math.max(Math.floor(rounds / 10), 2); r++) {
      const { arrivals } = await timedReply(conn, '[tokens=50 pace_ms=20]', 50);
      for (const g of gaps(arrivals)) jitter.push(Math.abs(g - 20));
    }
    push('|gap - 20 ms| (pace 20 ms)', jitter);
    const { arrivals } = await timedReply(conn, '[tokens=5000]', 5000);
    push('gap at full speed (5,000 tokens)', gaps(arrivals));
  } finally {
    conn.close();
    plain.close();
  }
  // What a reconnect's socket costs the host alone: open and attach.
  const attach = [];
  for (let r = 0; r < Math.max(Math.floor(rounds / 4), 3); r++) {
    const p = await openPlain(WebSocketCtor, wsUrl, plainContextId, await getToken(plainContextId));
    attach.push(p.attach);
    p.close();
  }
  push('plain WebSocket, no SDK: open + attach', attach);

  // The freeze when the socket dies after token 100 of 200 (pace 2 ms).
  // The package exposes no reconnect policy: the default one counts a
  // connection as healthy only after 5 s up and backs off between quicker
  // cuts (flapping protection). The first reconnect of a connection is
  // immediate by design, so each cut is on a fresh connection (its connect
  // and first key are not timed).
  log('  (no reconnect policy in the JS API: each cut on a fresh connection, whose first reconnect is immediate; one uncounted warm-up cut first)');
  // Where a freeze goes, as the package's state events tell it: from the
  // last token before the gap to the loss being seen (`lost`), to attached
  // again (`reopen`: the key, a new socket, `connect_to_context`), to the
  // next token (`resume`: the replay).
  const parts = { lost: [], reopen: [], resume: [] };
  const freeze = async (client, kind, split = false) => {
    const conn = await within(client.connect(contextId), 'connect');
    const states = [];
    const off = conn.on('state', (e) => states.push([performance.now(), e.state]));
    try {
      let cut = null;
      const { arrivals } = await timedReply(conn, '[tokens=200 pace_ms=2]', 200, (i) => {
        // Off the reading path: the listener returns at once.
        if (i === 100) cut = fault(kind);
      });
      // The cut reached the socket (or this throws).
      await within(cut, `fault ${kind}`);
      const g = gaps(arrivals);
      const worst = g.indexOf(Math.max(...g));
      const [before, after] = [arrivals[worst], arrivals[worst + 1]];
      const lost = states.find(([t, st]) => t >= before && st !== 'connected');
      const back = lost && states.find(([t, st]) => t >= lost[0] && st === 'connected');
      if (split && back && back[0] <= after) {
        parts.lost.push(lost[0] - before);
        parts.reopen.push(back[0] - lost[0]);
        parts.resume.push(after - back[0]);
      }
      return g[worst] - 2;
    } finally {
      off();
      conn.close();
    }
  };
  // With a 100 ms provider, refresh-ahead off (the key fetched on
  // reconnect) and on (the default: the next key fetched while connected).
  // The variants and faults take turns, cut after cut, so that a change in
  // the machine's load weighs on every row alike.
  const variants = [[0, true, ''], [100, false, ', on demand'], [100, true, ', ahead']].map(([delayMs, refreshAhead, label]) => {
    const calls = [];
    return { label: `provider ${delayMs} ms${label}`, calls, client: new Client({ ...timed(options, delayMs, calls), refreshAhead }) };
  });
  const faults = ['close_1001', 'close_1011', 'close_4001', 'drop'];
  await freeze(variants[0].client, 'drop');
  variants[0].calls.length = 0;
  const freezes = new Map();
  for (let c = 0; c < cuts; c++) {
    for (const v of variants) {
      for (const kind of faults) {
        const key = `freeze, ${kind}, ${v.label}`;
        if (!freezes.has(key)) freezes.set(key, []);
        freezes.get(key).push(await freeze(v.client, kind, v === variants[0]));
      }
    }
  }
  for (const [i, v] of variants.entries()) {
    for (const kind of faults) push(`freeze, ${kind}, ${v.label}`, freezes.get(`freeze, ${kind}, ${v.label}`));
    // getToken's own time, as the package sees it: what a reconnect
    // waits for when no key was fetched ahead.
    if (i === 0) {
      push('getToken call (provider 0 ms)', v.calls);
      push('  parts (provider 0 ms, all faults): lost', parts.lost);
      push('  parts: reopen (key, socket, attach)', parts.reopen);
      push('  parts: resume (first replayed token)', parts.resume);
    }
  }
  return rows;
}
