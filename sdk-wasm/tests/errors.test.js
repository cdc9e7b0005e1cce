// Error classes: every core error kind has its own class, and a failed
// getToken is classified by the core's one rule (`Error::from_provider`),
// as the Python and Kotlin bindings classify the same failure.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Client, init, TokenRelayError, UnauthorizedError, ForbiddenError, NotFoundError, RateLimitedError,
  PaymentRequiredError, InvalidRequestError, ServerError, ProtocolError, TimeoutError,
  ConnectionLostError, ClosedError, TokenProviderError, ExpiredTokenError, TransportError,
  QueueFullError, QueueExpiredError, ClosedBeforeSentError, EventsDroppedError, ConfigError,
} from '../pkg/node.js';
import { __errorKindsForTests } from '../pkg/client.js';
import { Server, within } from './harness.js';

let server;
before(async () => { server = await Server.start(); });
after(async () => { await server?.stop(); });

// The class of every core error kind (sdk-core `ErrorKind`): what
// js/errors.js's table must say, so a kind the core adds fails here until
// it has a class.
const EXPECTED_CLASS = {
  unauthorized: UnauthorizedError,
  forbidden: ForbiddenError,
  not_found: NotFoundError,
  rate_limited: RateLimitedError,
  payment_required: PaymentRequiredError,
  invalid_request: InvalidRequestError,
  server: ServerError,
  protocol: ProtocolError,
  timeout: TimeoutError,
  connection_lost: ConnectionLostError,
  closed: ClosedError,
  token_provider: TokenProviderError,
  expired_token: ExpiredTokenError,
  transport: TransportError,
  queue_full: QueueFullError,
  queue_expired: QueueExpiredError,
  closed_before_sent: ClosedBeforeSentError,
  events_dropped: EventsDroppedError,
  config: ConfigError,
};

test('every core error kind has its own class, never the TokenRelayError fallback', async () => {
  await init(); // the samples come from the wasm module
  const samples = __errorKindsForTests();
  assert.deepEqual(samples.map((e) => e.code).sort(), Object.keys(EXPECTED_CLASS).sort());
  for (const e of samples) {
    const expected = EXPECTED_CLASS[e.code];
    assert.equal(e.constructor, expected, `${e.code}: ${e.constructor.name}`);
    assert.notEqual(e.constructor, TokenRelayError);
    assert.ok(e instanceof TokenRelayError);
    assert.equal(e.name, expected.name);
  }
  const limited = samples.find((e) => e.code === 'rate_limited');
  assert.equal(limited.retryAfterMs, 1000);
});

const httpError = (status) => Object.assign(new Error(`backend answered HTTP ${status}`), { status });

// The same failures, with the same classes, as sdk-python/tests/test_errors.py
// and the Kotlin suite (ClientTests.kt, "provider failures").
const PROVIDER_FAILURES = [
  ['status 500', () => httpError(500), ServerError],
  ['status 401', () => httpError(401), UnauthorizedError],
  ['status 403', () => httpError(403), ForbiddenError],
  ['status 429', () => httpError(429), RateLimitedError],
  // What fetch rejects with when its AbortSignal.timeout() fires.
  ['timeout', () => new DOMException('signal timed out', 'TimeoutError'), TokenProviderError],
  ['no status', () => new Error('backend down'), TokenProviderError],
  // Where else JS code puts a status, and the package's own class.
  ['a fetch Response thrown', () => new Response(null, { status: 503 }), ServerError],
  ['response.status (ky, ofetch)', () => Object.assign(new Error('HTTP 500'), { response: new Response(null, { status: 500 }) }), ServerError],
  ['statusCode (node http clients)', () => Object.assign(new Error('HTTP 403'), { statusCode: 403 }), ForbiddenError],
  ['a Node error code is not a server code', () => Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), TokenProviderError],
  ['own class wins', () => new NotFoundError('no such user', { status: 500 }), NotFoundError],
];

for (const [name, failure, expected] of PROVIDER_FAILURES) {
  test(`a failed getToken (${name}) is ${expected.name}, as in every binding`, async () => {
    const ctx = await server.context();
    let calls = 0;
    const client = new Client(server.clientOptions({
      getToken: async () => { calls += 1; throw failure(); },
      connectTimeoutMs: 1000,
      refreshAhead: false,
    }));
    const err = await within(client.connect(ctx).then(() => null, (e) => e), 'connect to fail');
    assert.ok(err, 'connect() resolved');
    assert.equal(err.constructor, expected, `${name}: ${err?.constructor?.name}: ${err?.message}`);
    if (expected === ForbiddenError) assert.equal(calls, 1, 'a terminal refusal is not retried');
    if (name === 'status 500') assert.equal(err.status, 500);
  });
}
