// Node throughput over loopback: N `on_token` frames streamed as fast as
// possible by the core's loopback bench server (sdk-core/benches/loopback.rs
// `--serve N`, the same server the native figures in docs/benchmarks.md
// use; its own process, so on the other core), read by a plain client (npm
// `ws` + JSON.parse + string append) and by this package, side by side in
// one run, alternating. Prints one JSON line per run and a summary.
//
// Not the reference server: it rightly closes a socket that cannot keep up
// with a pace-0 stream (1011, then resume), which a plain client without
// resume cannot survive, and its own cost would dominate both clients.

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import WebSocket from 'ws';
import { Client } from '../pkg/node.js';
import { root } from '../tests/harness.js';

const N = Number(process.env.FRAMES ?? 1_000_000);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const message = 'go';

function plain(server, ctx, key) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(server.ws);
    let text = '';
    let frames = 0;
    let t0;
    let cpu0;
    ws.on('open', () => ws.send(JSON.stringify({ method: 'connect_to_context', id: '1', params: { context_id: ctx, access_token: key } })));
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString());
      if (m.method === 'on_token') {
        text += m.params.token;
        frames += 1;
      } else if (m.method === 'on_stop_token') {
        const ms = performance.now() - t0;
        const cpu = process.cpuUsage(cpu0);
        ws.close();
        resolve({ frames, ms, cpuMs: (cpu.user + cpu.system) / 1000, chars: text.length });
      } else if (m.id === '1') {
        t0 = performance.now();
        cpu0 = process.cpuUsage();
        ws.send(JSON.stringify({ method: 'add_message', id: '2', params: { message } }));
      }
    });
    ws.on('error', reject);
  });
}

async function sdk(server, ctx) {
  const conn = await new Client({ wsUrl: server.ws, getToken: () => 'bench-token', WebSocket }).connect(ctx);
  let frames = 0;
  conn.on('token', () => { frames += 1; });
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const r = await conn.ask(message);
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  conn.close();
  return { frames, ms, cpuMs: (cpu.user + cpu.system) / 1000, chars: r.text.length };
}

// Per-token latency added by the package: from the socket's `message` event
// of an `on_token` frame to the `token` listener seeing that token. A
// separate run (the clock reads would slow the throughput runs). Frames are
// handed to wasm in one batch per socket read, so under a full-speed blast a
// token waits for the rest of its read to be copied in; a paced stream
// (tokens arriving one per read, as from a model) waits for nothing.
async function latency(server, ctx) {
  const arrivals = [];
  const delays = [];
  class Timed extends WebSocket {
    set onmessage(f) {
      super.onmessage = f && ((e) => {
        if (typeof e.data === 'string' && e.data.startsWith('{"method":"on_token"')) arrivals.push(performance.now());
        f(e);
      });
    }
    get onmessage() { return super.onmessage; }
  }
  const conn = await new Client({ wsUrl: server.ws, getToken: () => 'bench-token', WebSocket: Timed }).connect(ctx);
  conn.on('token', () => { delays.push(performance.now() - arrivals[delays.length]); });
  await conn.ask(message);
  conn.close();
  delays.sort((a, b) => a - b);
  const us = (q) => +(delays[Math.min(delays.length - 1, Math.floor(q * delays.length))] * 1000).toFixed(1);
  return { frames: delays.length, p50Us: us(0.5), p99Us: us(0.99), maxUs: us(1) };
}

// Its own process group, so stopping it also stops the bench binary cargo
// started (killing cargo alone leaves the server running).
const child = spawn('cargo', ['bench', '-q', '-p', 'tokenrelay', '--bench', 'loopback', '--', '--serve', String(N)], {
  cwd: root, stdio: ['ignore', 'pipe', 'inherit'], detached: true,
});
const url = await new Promise((resolve, reject) => {
  child.once('exit', (code) => reject(new Error(`the bench server exited with ${code}`)));
  createInterface({ input: child.stdout }).on('line', (line) => { if (line.startsWith('ws://')) resolve(line.trim()); });
});
const server = { ws: url, stop: async () => { process.kill(-child.pid, 'SIGTERM'); } };
const results = { plain: [], sdk: [] };
try {
  for (let round = 0; round < ROUNDS; round += 1) {
    for (const kind of ['plain', 'sdk']) {
      const ctx = 'bench';
      const r = kind === 'plain' ? await plain(server, ctx, 'bench-token') : await sdk(server, ctx);
      if (r.frames !== N) throw new Error(`${kind}: ${r.frames} frames, expected ${N}`);
      const line = { kind, round, ...r, framesPerSec: Math.round(N / (r.ms / 1000)), usPerFrame: (r.ms * 1000) / N, cpuUsPerFrame: (r.cpuMs * 1000) / N };
      results[kind].push(line);
      console.log(JSON.stringify(line));
    }
  }
  const lat = await latency(server, 'bench');
  console.log(JSON.stringify({ kind: 'sdk-latency', ...lat }));
  results.latency = lat;
} finally {
  await server.stop();
}
const best = (k) => results[k].reduce((a, b) => (b.framesPerSec > a.framesPerSec ? b : a));
const p = best('plain');
const s = best('sdk');
// Each round runs the two clients back to back, so a round's ratio is the
// least disturbed by a noisy machine; the median of them is the figure.
const paired = results.sdk.map((r, i) => r.framesPerSec / results.plain[i].framesPerSec).sort((a, b) => a - b);
const median = paired[Math.floor(paired.length / 2)];
console.log(JSON.stringify({
  summary: true, frames: N,
  plainFramesPerSec: p.framesPerSec, sdkFramesPerSec: s.framesPerSec, ratio: +(s.framesPerSec / p.framesPerSec).toFixed(3),
  medianPairedRatio: +median.toFixed(3), pairedRatios: paired.map((r) => +r.toFixed(3)),
  plainCpuUsPerFrame: +p.cpuUsPerFrame.toFixed(2), sdkCpuUsPerFrame: +s.cpuUsPerFrame.toFixed(2),
  sdkTokenLatencyUs: { p50: results.latency.p50Us, p99: results.latency.p99Us, max: results.latency.maxUs },
}));
// For `cargo xtask bench`.
console.log(['bench-result', 'Node (sdk-wasm)', `frames/s, best of ${ROUNDS} (median paired ratio ${median.toFixed(2)}×)`,
  `${(s.framesPerSec / 1e6).toFixed(3)} M`, `plain ws + JSON.parse: ${(p.framesPerSec / 1e6).toFixed(3)} M`].join('\t'));
console.log(['bench-result', 'Node (sdk-wasm)', 'token latency under a full-speed stream, µs p50 / p99',
  `${results.latency.p50Us} / ${results.latency.p99Us}`, ''].join('\t'));
process.exit(0);
