// `tokenrelay/testing`, the helper the package ships for its users' test
// suites: a server with a bootstrapped org on a free port, the binary found
// in the documented order (and an error naming every place when it is not),
// a restart that keeps the address and the data, a failed start that says
// why. Node only; no wasm involved.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import {
  startReferenceServer, findServerBinary, ReferenceServer, ServerNotFoundError, ENV_VAR, BINARY_NAME,
} from '../pkg/testing.js';
import { serverBinary } from './harness.js';

async function rest(server, method, path, body) {
  const r = await fetch(server.httpUrl + path, {
    method,
    headers: { authorization: `Bearer ${server.orgKey}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert.ok(r.ok, `${method} ${path}: HTTP ${r.status}`);
  return r.json();
}

const newAgent = (server) => rest(server, 'POST', '/agent', {
  agent_name: 'testing agent', agent_description: 'tokenrelay/testing', prompt: '',
  is_public: false, agent_speaks_first: false,
});

test('a started server serves its bootstrapped org on a free loopback port', async () => {
  const server = await startReferenceServer({ binary: serverBinary(), args: ['--scripted-pace-ms', '0'] });
  try {
    assert.ok(server.running);
    assert.match(server.httpUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(server.wsUrl, server.httpUrl.replace('http://', 'ws://') + '/ws');
    assert.ok(server.orgId);
    const agent = await newAgent(server);
    const key = await rest(server, 'POST', '/generate-api-key', { org_id: server.orgId, type: 'client' });
    assert.ok(key.token && agent.agent_id);
    assert.ok(server.log.some((line) => /\bready\b/.test(line)));
    // The org key stays out of test reports and of the log.
    assert.ok(!inspect(server).includes(server.orgKey));
    assert.ok(!JSON.stringify(server).includes(server.orgKey));
    assert.ok(!server.log.some((line) => line.includes(server.orgKey)));
  } finally {
    await server.stop();
  }
  assert.ok(!server.running);
  assert.ok(!existsSync(server.db), 'stop() removes the store it created');
});

for (const graceful of [true, false]) {
  test(`restart({ graceful: ${graceful} }) keeps the address and the data`, async () => {
    const server = await startReferenceServer({ binary: serverBinary(), args: ['--drain-timeout-secs', '1'] });
    try {
      const { httpUrl, wsUrl, orgKey } = server;
      const agent = await newAgent(server);
      await server.restart({ graceful });
      assert.ok(server.running);
      assert.deepEqual([server.httpUrl, server.wsUrl, server.orgKey], [httpUrl, wsUrl, orgKey]);
      const again = await rest(server, 'GET', `/agent/${agent.agent_id}`);
      assert.equal(again.agent_id, agent.agent_id);
      assert.equal(server.log.filter((line) => /\bready\b/.test(line)).length, 2, 'one log across restarts');
      await assert.rejects(server.start(), /already running/);
    } finally {
      await server.stop();
    }
  });
}

test('a server that cannot start says why', async () => {
  await assert.rejects(
    startReferenceServer({ binary: serverBinary(), args: ['--no-such-flag'] }),
    (e) => /bootstrap failed/.test(e.message) && e.message.includes('--no-such-flag'),
  );
  const first = await startReferenceServer({ binary: serverBinary() });
  try {
    // serve fails after a good bootstrap: the address is taken.
    await assert.rejects(
      startReferenceServer({ binary: serverBinary(), bind: new URL(first.httpUrl).host }),
      /exited .* before it was ready/,
    );
  } finally {
    await first.stop();
  }
});

test('the binary: the option, then TOKENRELAY_SERVER_BIN, then PATH; else an error naming each', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tokenrelay-find-'));
  const saved = { bin: process.env[ENV_VAR], path: process.env.PATH };
  const fake = (sub) => {
    mkdirSync(join(dir, sub));
    const path = join(dir, sub, BINARY_NAME);
    writeFileSync(path, '#!/bin/sh\n');
    chmodSync(path, 0o755);
    return path;
  };
  try {
    const [given, fromEnv, onPath] = [fake('given'), fake('env'), fake('path')];
    process.env[ENV_VAR] = fromEnv;
    process.env.PATH = join(dir, 'path');
    assert.equal(findServerBinary(given), given);
    assert.equal(findServerBinary(), fromEnv);
    delete process.env[ENV_VAR];
    assert.equal(findServerBinary(), onPath);
    rmSync(onPath);
    assert.throws(() => findServerBinary(), (e) => e instanceof ServerNotFoundError &&
      e.message.includes(ENV_VAR) && e.message.includes('PATH') && e.message.includes('binary option'));
    // A wrong explicit choice fails; it never falls back to another server.
    assert.throws(() => findServerBinary(join(dir, 'missing')), /the binary option names .* not an executable/);
    process.env[ENV_VAR] = join(dir, 'missing');
    assert.throws(() => findServerBinary(), new RegExp(`${ENV_VAR} names .* not an executable`));
    assert.throws(() => new ReferenceServer(), ServerNotFoundError);
  } finally {
    if (saved.bin === undefined) delete process.env[ENV_VAR];
    else process.env[ENV_VAR] = saved.bin;
    process.env.PATH = saved.path;
    rmSync(dir, { recursive: true, force: true });
  }
});
