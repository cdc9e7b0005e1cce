// The Kotlin surface against the real server: the Kotlin token provider on
// reconnect, resume after a socket kill mid-reply, errors mapped to the
// right exception class, stop, lifecycle hooks, close, the admin client.
package dev.tokenrelay.test

import dev.tokenrelay.AdminClient
import kotlin.time.Duration.Companion.milliseconds
import dev.tokenrelay.Client
import dev.tokenrelay.ClientConfig
import dev.tokenrelay.Connection
import dev.tokenrelay.ConnectionState
import dev.tokenrelay.ErrorKind
import dev.tokenrelay.Event
import dev.tokenrelay.errorKindsForTests
import dev.tokenrelay.sampleErrorForTests
import dev.tokenrelay.ResponseStatus
import dev.tokenrelay.TokenRelayException
import dev.tokenrelay.appEndpointTokenProvider
import dev.tokenrelay.use
import java.util.concurrent.atomic.AtomicBoolean
import java.util.concurrent.atomic.AtomicInteger
import kotlin.coroutines.ContinuationInterceptor
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.async
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.currentCoroutineContext
import kotlinx.coroutines.delay
import kotlinx.coroutines.withContext
import kotlinx.coroutines.withTimeout
import kotlinx.coroutines.withTimeoutOrNull
import kotlinx.coroutines.awaitCancellation
import kotlin.reflect.KClass

private fun tokens(n: Int) = (0 until n).joinToString(" ") { "t$it" }

/**
 * The exception class of every core error kind: what the binding's table
 * (sdk-mobile/src/error.rs) must give. A `when` without `else`: a kind the
 * core adds does not compile here until it has a class.
 */
private fun expectedClass(kind: ErrorKind): KClass<out TokenRelayException> = when (kind) {
    ErrorKind.UNAUTHORIZED -> TokenRelayException.Unauthorized::class
    ErrorKind.FORBIDDEN -> TokenRelayException.Forbidden::class
    ErrorKind.NOT_FOUND -> TokenRelayException.NotFound::class
    ErrorKind.RATE_LIMITED -> TokenRelayException.RateLimited::class
    ErrorKind.PAYMENT_REQUIRED -> TokenRelayException.PaymentRequired::class
    ErrorKind.INVALID_REQUEST -> TokenRelayException.InvalidRequest::class
    ErrorKind.SERVER -> TokenRelayException.Server::class
    ErrorKind.PROTOCOL -> TokenRelayException.Protocol::class
    ErrorKind.TIMEOUT -> TokenRelayException.Timeout::class
    ErrorKind.CONNECTION_LOST -> TokenRelayException.ConnectionLost::class
    ErrorKind.CLOSED -> TokenRelayException.Closed::class
    ErrorKind.TOKEN_PROVIDER -> TokenRelayException.TokenProvider::class
    ErrorKind.EXPIRED_TOKEN -> TokenRelayException.ExpiredToken::class
    ErrorKind.TRANSPORT -> TokenRelayException.Transport::class
    ErrorKind.QUEUE_FULL -> TokenRelayException.QueueFull::class
    ErrorKind.QUEUE_EXPIRED -> TokenRelayException.QueueExpired::class
    ErrorKind.CLOSED_BEFORE_SENT -> TokenRelayException.ClosedBeforeSent::class
    ErrorKind.EVENTS_DROPPED -> TokenRelayException.EventsDropped::class
    ErrorKind.CONFIG -> TokenRelayException.Config::class
}

/** An app's exception for an HTTP answer, as Kotlin HTTP clients have them. */
private class HttpFailure(val status: Int) : Exception("backend answered HTTP $status")

/** Retrofit's `HttpException` keeps the status behind `code()`. */
private class RetrofitStyleFailure(private val code: Int) : Exception("HTTP $code") {
    fun code(): Int = code
}

/** A provider failure: its name, the class connect() must fail with, and
 * what the provider does (throws). */
private class ProviderFailureCase(
    val name: String,
    val expected: KClass<out TokenRelayException>,
    val fail: suspend () -> Nothing,
)

private val providerFailures = listOf(
    ProviderFailureCase("status 500", TokenRelayException.Server::class) { throw HttpFailure(500) },
    ProviderFailureCase("status 401", TokenRelayException.Unauthorized::class) { throw HttpFailure(401) },
    ProviderFailureCase("status 403", TokenRelayException.Forbidden::class) { throw HttpFailure(403) },
    ProviderFailureCase("status 429", TokenRelayException.RateLimited::class) { throw HttpFailure(429) },
    // The provider's own withTimeout firing (a TimeoutCancellationException).
    ProviderFailureCase("timeout", TokenRelayException.TokenProvider::class) { withTimeout(10) { awaitCancellation() } },
    ProviderFailureCase("no status", TokenRelayException.TokenProvider::class) { throw IllegalStateException("backend down") },
    ProviderFailureCase("Retrofit code() 503", TokenRelayException.Server::class) { throw RetrofitStyleFailure(503) },
    ProviderFailureCase("own class wins", TokenRelayException.NotFound::class) {
        throw TokenRelayException.NotFound("no such user", null, 500.toUShort())
    },
)

/** Reads events until one matches [pick], within 20 s. */
private suspend fun <T : Any> EventReader.until(what: String, pick: suspend (Event) -> T?): T =
    withTimeout(20_000) {
        while (true) {
            val e = nextOrNull() ?: throw TestFailure("the event flow ended while waiting for $what")
            pick(e)?.let { return@withTimeout it }
        }
        @Suppress("UNREACHABLE_CODE")
        throw IllegalStateException()
    }

private suspend fun EventReader.state(s: ConnectionState) =
    until("state $s") { e -> (e as? Event.StateChanged)?.change?.takeIf { it.state == s } }

/** The next state change within [ms], or null if there is none by then. */
private suspend fun EventReader.stateWithin(ms: Long): ConnectionState? =
    withTimeoutOrNull(ms) { until("a state change") { e -> (e as? Event.StateChanged)?.change?.state } }

/** What a test gets from [connected]: one connection on a fresh context. */
private class Session(
    val conn: Connection,
    val events: EventReader,
    val provider: CountingProvider,
    val contextId: String,
)

/**
 * Runs [body] with a client on a fresh context (a Kotlin provider minting a
 * key per call), its events collected; closes everything afterwards.
 * Refresh-ahead is off: these tests count the provider's calls one
 * connection at a time (the refresh-ahead test turns it on).
 */
private suspend fun connected(server: ReferenceServer, body: suspend Session.() -> Unit) {
    val contextId = server.newContext()
    val provider = CountingProvider(server)
    Client(ClientConfig(wsUrl = server.wsUrl, refreshAhead = false), provider::token).use { client ->
        client.connect(contextId).use { conn ->
            val events = EventReader(conn.events())
            try {
                Session(conn, events, provider, contextId).body()
            } finally {
                events.cancel()
            }
        }
    }
}

/** [key] re-signed with a secret the server does not have: a well-formed
 * HS256 JWT, unexpired, for the right context, that no server accepts. */
private fun forged(key: String): String {
    val (header, payload) = key.split('.')
    val mac = javax.crypto.Mac.getInstance("HmacSHA256")
    mac.init(javax.crypto.spec.SecretKeySpec("not-the-servers-secret-not-the-servers".toByteArray(), "HmacSHA256"))
    val signature = java.util.Base64.getUrlEncoder().withoutPadding().encodeToString(mac.doFinal("$header.$payload".toByteArray()))
    return "$header.$payload.$signature"
}

fun clientTests(): List<Test> = listOf(
    Test("kotlin token provider is called again on reconnect") { server ->
        connected(server) {
            assertEq(conn.ask("[echo] before").text, "before", "first reply")
            assertEq(provider.calls.get(), 1, "provider calls after connect")
            server.fault(contextId, "drop")
            events.reconnected()
            assertEq(conn.ask("[echo] after").text, "after", "reply after the reconnect")
            check(provider.calls.get() >= 2) { "the provider was not called again: ${provider.calls.get()}" }
            check(provider.tokens.toSet().size == provider.tokens.size) { "a key was reused" }
        }
    },

    Test("refresh ahead: a reconnect presents the key fetched while connected") { server ->
        // The provider answers twice (the connection's key, then the spare
        // fetched once attached) and then never again: the reconnect after
        // the server closes the socket must not need it.
        val contextId = server.newContext()
        val calls = java.util.concurrent.atomic.AtomicInteger(0)
        val provider: suspend (String) -> String = { ctx ->
            if (calls.incrementAndGet() > 2) kotlinx.coroutines.awaitCancellation()
            server.admin.generateClientKey(server.orgId, ctx, null).token()
        }
        Client(ClientConfig(wsUrl = server.wsUrl), provider).use { client ->
            client.connect(contextId).use { conn ->
                val events = EventReader(conn.events())
                try {
                    withTimeout(20_000) { while (calls.get() < 2) delay(5) }
                    server.fault(contextId, "close_1001")
                    events.state(ConnectionState.RECONNECTING)
                    events.state(ConnectionState.CONNECTED)
                    assertEq(conn.ask("[echo] after").text, "after", "reply after the reconnect")
                    withTimeout(20_000) { while (calls.get() < 3) delay(5) }
                } finally {
                    events.cancel()
                }
            }
        }
    },

    Test("socket killed mid-reply: fresh key, resume, every token once") { server ->
        connected(server) {
            val request = conn.sendMessage("[tokens=120 pace_ms=3] go")
            val rid = events.until("the reply") { e ->
                (e as? Event.ResponseStarted)?.takeIf { it.requestId?.toLong() == request }?.responseId
            }
            val received = StringBuilder()
            var count = 0
            var resumed = false
            val response = events.until("the end of the reply") { e ->
                when (e) {
                    is Event.Token -> if (e.responseId == rid) {
                        received.append(e.token)
                        count++
                        if (count == 20) server.fault(contextId, "drop")
                    }
                    is Event.Connected -> if (e.resumed) resumed = true
                    else -> {}
                }
                (e as? Event.ResponseComplete)?.response?.takeIf { it.id == rid }
            }
            assertEq(response.status, ResponseStatus.COMPLETE, "status")
            assertEq(response.text, tokens(120), "assembled text")
            assertEq(received.toString(), tokens(120), "text of the token events")
            assertEq(count, 120, "token events (each exactly once)")
            check(resumed) { "no Connected(resumed = true) after the drop" }
            check(provider.calls.get() >= 2) { "no fresh key for the reconnect" }
        }
    },

    Test("ask returns the whole reply while events() streams it") { server ->
        connected(server) {
            val reply = conn.ask("[tokens=300] stream")
            assertEq(reply.text, tokens(300), "ask() text")
            val streamed = StringBuilder()
            events.until("the reply's end") { e ->
                if (e is Event.Token && e.responseId == reply.id) streamed.append(e.token)
                (e as? Event.ResponseComplete)?.takeIf { it.response.id == reply.id }
            }
            assertEq(streamed.toString(), reply.text, "tokens seen by events()")
            assertEq(conn.state.value, ConnectionState.CONNECTED, "state")
        }
    },

    Test("error: a provider throwing Forbidden ends connect with Forbidden") { server ->
        val contextId = server.newContext()
        var calls = 0
        val client = Client(server.wsUrl) { _ ->
            calls++
            throw TokenRelayException.Forbidden("this user may not open the context", null, null)
        }
        val e = assertThrows<TokenRelayException.Forbidden>("connect") { client.connect(contextId) }
        check("may not open" in e.detail) { "detail lost: ${e.detail}" }
        assertEq(calls, 1, "provider calls (a terminal refusal is not retried)")
    },

    Test("error: an unknown context is NotFound") { server ->
        val provider = CountingProvider(server)
        val client = Client(server.wsUrl, provider::token)
        assertThrows<TokenRelayException.NotFound>("connect") { client.connect("no-such-context") }
    },

    Test("error: a provider throwing anything else is retried, then TokenProvider") { server ->
        val contextId = server.newContext()
        var calls = 0
        val config = ClientConfig(wsUrl = server.wsUrl, connectTimeout = 1500.milliseconds, reconnectMinDelay = 50.milliseconds, reconnectMaxDelay = 100.milliseconds)
        val client = Client(config) { _ ->
            calls++
            throw IllegalStateException("backend down")
        }
        val e = assertThrows<TokenRelayException.TokenProvider>("connect") { client.connect(contextId) }
        check("backend down" in e.detail) { "detail lost: ${e.detail}" }
        check(calls >= 2) { "not retried: $calls calls" }
    },

    Test("error: every core error kind has its own exception class") { _ ->
        val kinds = errorKindsForTests()
        assertEq(kinds.toSet(), ErrorKind.entries.toSet(), "kinds")
        for (kind in kinds) {
            val e = sampleErrorForTests(kind)
            val expected = expectedClass(kind)
            check(expected.isInstance(e)) { "$kind: expected ${expected.simpleName}, got ${e::class.simpleName}" }
        }
        val limited = sampleErrorForTests(ErrorKind.RATE_LIMITED) as TokenRelayException.RateLimited
        assertEq(limited.retryAfterMs, 1000uL, "retryAfterMs")
    },

    // The same failures, with the same classes, as
    // sdk-python/tests/test_errors.py and sdk-wasm/tests/errors.test.js:
    // the core's one rule for a failed provider decides.
    *providerFailures.map { case ->
        val (name, expected) = case.name to case.expected
        Test("error: a provider failing with $name is ${expected.simpleName}, as in every binding") { server ->
            val contextId = server.newContext()
            var calls = 0
            val config = ClientConfig(
                wsUrl = server.wsUrl, connectTimeout = 1000.milliseconds, reconnectMinDelay = 50.milliseconds,
                reconnectMaxDelay = 100.milliseconds, refreshAhead = false,
            )
            val client = Client(config) { _ ->
                calls++
                case.fail()
            }
            val e = assertThrows<TokenRelayException>("connect") { client.connect(contextId) }
            check(expected.isInstance(e)) { "$name: expected ${expected.simpleName}, got $e" }
            if (e is TokenRelayException.Forbidden) assertEq(calls, 1, "provider calls (a terminal refusal is not retried)")
            if (name == "status 500") assertEq((e as TokenRelayException.Server).status, 500.toUShort(), "status")
        }
    }.toTypedArray(),

    Test("error: a wrong admin key is Unauthorized with its HTTP status") { server ->
        val admin = AdminClient(server.httpUrl, "not-a-key")
        val e = assertThrows<TokenRelayException.Unauthorized>("list agents") { admin.listAgents() }
        assertEq(e.status, 401.toUShort(), "status")
    },

    Test("error: a non-WebSocket URL is Config") { _ ->
        assertThrows<TokenRelayException.Config>("client") { Client("http://example.invalid/ws") { "k" } }
    },

    Test("TLS config: ws:// off loopback needs allowInsecure; a bad CA PEM or proxy URL is Config") { server ->
        assertThrows<TokenRelayException.Config>("ws:// to another host") {
            Client("ws://example.invalid/ws") { "k" }
        }
        Client(ClientConfig(wsUrl = "ws://example.invalid/ws", allowInsecure = true)) { "k" }.close()
        assertThrows<TokenRelayException.Config>("a bad PEM") {
            Client(ClientConfig(wsUrl = "wss://example.invalid/ws", rootCertificatePem = "junk")) { "k" }
        }
        assertThrows<TokenRelayException.Config>("a SOCKS proxy") {
            Client(ClientConfig(wsUrl = "wss://example.invalid/ws", proxy = "socks5://127.0.0.1:1")) { "k" }
        }
        assertThrows<TokenRelayException.Config>("http:// admin to another host") {
            AdminClient("http://example.invalid", "k")
        }
        AdminClient("http://example.invalid", "k", allowInsecure = true)
        // Loopback plaintext still streams, with the proxy variables ignored.
        val ctx = server.newContext()
        val provider = CountingProvider(server)
        Client(ClientConfig(wsUrl = server.wsUrl, noProxy = true), provider::token).use { client ->
            client.connect(ctx).use { conn -> assertEq(conn.ask("[tokens=2]").text, "t0 t1", "reply") }
        }
    },

    Test("stop() ends the reply stopped with the partial text") { server ->
        connected(server) {
            val request = conn.sendMessage("[tokens=500 pace_ms=5] long")
            var seen = 0
            val r = events.until("the stopped reply") { e ->
                if (e is Event.Token && ++seen == 3) conn.stop()
                (e as? Event.ResponseComplete)?.response?.takeIf { it.requestId?.toLong() == request }
            }
            assertEq(r.status, ResponseStatus.STOPPED, "status")
            check(tokens(500).startsWith(r.text) && r.text.isNotEmpty()) { "text '${r.text}'" }
        }
    },

    Test("setLastMessages re-invokes the agent; client-side tool answers") { server ->
        connected(server) {
            val first = conn.ask("[client_tool=get_location] where?")
            assertEq(first.clientSideToolCalls.map { it.toolName }, listOf("get_location"), "client-side calls")
            val next = conn.sendToolResponses(first.clientSideToolCalls[0].toolCallId to "52.5,13.4")
            check(next.text.endsWith("=52.5,13.4")) { "follow-up '${next.text}'" }
            val again = conn.setLastMessages("[echo] rewritten", "partial")
            val r = events.until("the re-invoked reply") { e ->
                (e as? Event.ResponseComplete)?.response?.takeIf { it.requestId?.toLong() == again }
            }
            assertEq(r.status, ResponseStatus.COMPLETE, "status")
            assertEq(r.text, "rewritten", "text")
        }
    },

    Test("pause(): no reconnect in the background; resume() reconnects at once") { server ->
        connected(server) {
            conn.pause()
            server.fault(contextId, "drop")
            events.state(ConnectionState.RECONNECTING)
            // Nothing happens while paused. An attempt shows as a state
            // change (FETCHING_TOKEN), and the first retry after a drop is
            // immediate: a connection that ignored pause() would change
            // state at once. Waits for such a change itself, bounded by a
            // window far beyond that.
            val stirred = events.stateWithin(1500)
            check(stirred == null) { "the connection went $stirred while paused" }
            assertEq(provider.calls.get(), 1, "provider calls while paused")
            check(conn.state.value != ConnectionState.CONNECTED) { "reconnected while paused" }
            // The network coming back while paused does not reconnect either
            // (it would at once: "network back" retries without waiting).
            conn.setNetworkAvailable(true)
            val stirredAgain = events.stateWithin(1000)
            check(stirredAgain == null) { "the connection went $stirredAgain after the network came back while paused" }
            assertEq(provider.calls.get(), 1, "provider calls after network back while paused")
            conn.resume()
            // "At once": from resume() to connected the connection only
            // fetches, connects and attaches; it never waits for a retry
            // (no reconnecting or suspended state in between).
            val states = mutableListOf<ConnectionState>()
            events.until("connected after resume") { e ->
                (e as? Event.StateChanged)?.change?.state?.also { states.add(it) }?.takeIf { it == ConnectionState.CONNECTED }
            }
            val direct = setOf(ConnectionState.FETCHING_TOKEN, ConnectionState.CONNECTING, ConnectionState.AUTHENTICATING, ConnectionState.CONNECTED)
            check(states.all { it in direct }) { "waited before reconnecting after resume(): $states" }
            assertEq(states.first(), ConnectionState.FETCHING_TOKEN, "first state after resume()")
            assertEq(provider.calls.get(), 2, "provider calls after resume")
            assertEq(conn.ask("[echo] back").text, "back", "reply after resume")
        }
    },

    Test("network lost: no retries; network back: reconnects at once") { server ->
        connected(server) {
            conn.setNetworkAvailable(false)
            server.fault(contextId, "drop")
            events.state(ConnectionState.RECONNECTING)
            // No retry while offline: the first would be immediate and show
            // as a state change; waits for one, bounded far beyond that.
            val stirred = events.stateWithin(1000)
            check(stirred == null) { "the connection went $stirred while offline" }
            assertEq(provider.calls.get(), 1, "provider calls while offline")
            conn.setNetworkAvailable(true)
            events.state(ConnectionState.CONNECTED)
            assertEq(conn.ask("[echo] online").text, "online", "reply")
        }
    },

    Test("close(): events() completes, requests fail with Closed") { server ->
        val contextId = server.newContext()
        val provider = CountingProvider(server)
        val client = Client(server.wsUrl, provider::token)
        val conn = client.connect(contextId)
        val events = EventReader(conn.events())
        conn.close()
        withTimeout(10_000) { while (events.nextOrNull() != null) { } }
        assertThrows<TokenRelayException.Closed>("ask after close") { conn.ask("hello?") }
        assertEq(conn.state.value, ConnectionState.CLOSED, "state")
    },

    Test("close() while events() is parked, with a cancelled collector before, 20 times") { server ->
        val provider = CountingProvider(server)
        val client = Client(server.wsUrl, provider::token)
        val contextId = server.newContext()
        repeat(20) { i ->
            val conn = client.connect(contextId)
            // A collector cancelled mid-wait leaves a pending read behind ...
            val first = EventReader(conn.events())
            first.state(ConnectionState.CONNECTED)
            first.cancel()
            // ... and a second one is parked waiting when close() comes.
            val events = EventReader(conn.events())
            if (i % 2 == 0) delay(5)
            conn.close()
            withTimeout(5_000) { while (events.nextOrNull() != null) { } }
            assertThrows<TokenRelayException.Closed>("send after close") { conn.sendMessage("x") }
        }
    },

    Test("offline queue: pendingCount, QueueFull, QueueExpired while offline, sent in order once back, ClosedBeforeSent on close") { server ->
        val contextId = server.newContext()
        val provider = CountingProvider(server)
        val config = ClientConfig(wsUrl = server.wsUrl, refreshAhead = false, maxQueued = 2, maxQueuedAge = 60_000.milliseconds)
        Client(config, provider::token).use { client ->
            val conn = client.connect(contextId)
            val events = EventReader(conn.events())
            try {
                conn.setNetworkAvailable(false)
                server.fault(contextId, "drop")
                events.state(ConnectionState.RECONNECTING)
                assertEq(conn.pendingCount, 0, "pending before")
                val first = conn.sendMessage("[echo] q0")
                val second = conn.sendMessage("[echo] q1")
                assertEq(conn.pendingCount, 2, "pending while offline")
                val full = assertThrows<TokenRelayException.QueueFull>("one more than maxQueued") { conn.sendMessage("[echo] q2") }
                assertEq(full.limit, 2uL, "the limit")
                conn.setNetworkAvailable(true)
                // The reference server may run invocations that arrive at
                // once in another order: replies are matched by id.
                val replies = mutableListOf<Pair<Long?, String>>()
                while (replies.size < 2) {
                    replies += events.until("the queued replies") { e ->
                        (e as? Event.ResponseComplete)?.response?.let { it.requestId?.toLong() to it.text }
                    }
                }
                assertEq(replies.sortedBy { it.first }, listOf(first to "q0", second to "q1"), "answered once each")
                assertEq(conn.pendingCount, 0, "pending once back")
            } finally {
                events.cancel()
                conn.close()
            }
        }
        // An age limit that passes while offline, then close() with one queued.
        Client(ClientConfig(wsUrl = server.wsUrl, refreshAhead = false, maxQueuedAge = 200.milliseconds), provider::token).use { client ->
            val conn = client.connect(contextId)
            val events = EventReader(conn.events())
            conn.setNetworkAvailable(false)
            server.fault(contextId, "drop")
            events.state(ConnectionState.RECONNECTING)
            val expired = assertThrows<TokenRelayException.QueueExpired>("aged out while offline") {
                withTimeout(20_000) { conn.ask("[echo] stale") }
            }
            assertEq(expired.afterMs, 200uL, "the age limit")
            check(conn.state.value == ConnectionState.RECONNECTING) { "failed only once back: ${conn.state.value}" }
            coroutineScope {
                val asking = async { runCatching { conn.ask("[echo] unsent") }.exceptionOrNull() }
                withTimeout(20_000) { while (conn.pendingCount != 1) delay(5) }
                conn.close()
                val err = withTimeout(20_000) { asking.await() }
                check(err is TokenRelayException.ClosedBeforeSent) { "close() with a queued message: $err" }
            }
            events.cancel()
        }
        val history = server.admin.getContext(contextId).rawJson()
        check("q0" in history && "q1" in history) { "the queued messages are in the history: $history" }
        check(listOf("q2", "stale", "unsent").none { it in history }) { "an unsent message reached the server: $history" }
    },

    Test("appEndpointTokenProvider: the app backend's endpoint mints keys; its 403 is Forbidden") { server ->
        val contextId = server.newContext()
        val calls = java.util.concurrent.atomic.AtomicInteger()
        // The app's backend: POST {"contextId": …} with the user's session,
        // answers {"clientToken": …} (the two-endpoint pattern).
        val backend = com.sun.net.httpserver.HttpServer.create(java.net.InetSocketAddress("127.0.0.1", 0), 0)
        backend.createContext("/api/get-client-token") { exchange ->
            calls.incrementAndGet()
            val body = parseJson(exchange.requestBody.readBytes().decodeToString()) as Map<*, *>
            val (status, answer) = if (exchange.requestHeaders.getFirst("Authorization") != "Bearer user-session") {
                403 to "{\"error\":\"not logged in\"}"
            } else {
                val key = kotlinx.coroutines.runBlocking {
                    server.admin.generateClientKey(server.orgId, body["contextId"] as String, null)
                }
                200 to "{\"clientToken\":${jsonString(key.token())}}"
            }
            val bytes = answer.toByteArray()
            exchange.sendResponseHeaders(status, bytes.size.toLong())
            exchange.responseBody.use { it.write(bytes) }
        }
        backend.start()
        try {
            val url = "http://127.0.0.1:${backend.address.port}/api/get-client-token"
            val good = appEndpointTokenProvider(url, mapOf("Authorization" to "Bearer user-session"), null, null)
            // Refresh-ahead off: this counts the backend's calls for one connection.
            Client(ClientConfig(wsUrl = server.wsUrl, refreshAhead = false), good).use { client ->
                client.connect(contextId).use { conn ->
                    assertEq(conn.ask("[echo] via my backend").text, "via my backend", "reply")
                }
            }
            assertEq(calls.get(), 1, "backend calls")
            val loggedOut = appEndpointTokenProvider(url, emptyMap(), null, null)
            val e = assertThrows<TokenRelayException.Forbidden>("connect, logged out") {
                Client(ClientConfig(wsUrl = server.wsUrl), loggedOut).connect(contextId)
            }
            check("not logged in" in e.detail) { "detail: ${e.detail}" }
            assertEq(calls.get(), 2, "backend calls (a 403 is not retried)")
        } finally {
            backend.stop(0)
        }
    },

    Test("two connections share nothing; concurrent asks on one connection") { server ->
        val provider = CountingProvider(server)
        val client = Client(server.wsUrl, provider::token)
        val a = client.connect(server.newContext())
        val b = client.connect(server.newContext())
        coroutineScope {
            val x = async { a.ask("[echo] to a") }
            val y = async { b.ask("[echo] to b") }
            val z = async { a.ask("[tokens=4] more") }
            assertEq(x.await().text, "to a", "a")
            assertEq(y.await().text, "to b", "b")
            assertEq(z.await().text, tokens(4), "a again")
        }
        a.close()
        b.close()
    },

    Test("a fresh key always refused: connect ends Unauthorized at once, after exactly two provider calls, and none after") { server ->
        // The core's rule: a refused key gets one fresh key at once; that one
        // refused too, before any attachment, the provider mints keys this
        // server does not take, and connect fails with the refusal at once
        // (not at its deadline, 10 minutes here, far beyond the test's bound).
        val contextId = server.newContext()
        val bad = forged(server.admin.generateClientKey(server.orgId, contextId, null).token())
        val calls = AtomicInteger(0)
        val settled = AtomicBoolean(false)
        val calledAgain = CompletableDeferred<Int>()
        val config = ClientConfig(
            wsUrl = server.wsUrl, connectTimeout = 600_000.milliseconds,
            // Short retry delays: a connection that kept retrying after connect
            // gave up would call the provider again within 100 ms.
            reconnectMinDelay = 50.milliseconds, reconnectMaxDelay = 100.milliseconds,
        )
        // The provider's body runs on this test's thread (as an app's may
        // run on the main thread), so the test sees every call in order with
        // its own steps. On other threads, a call that began before connect
        // settled could take its first step just after, which a check here
        // could not tell from a late call.
        val testThread = currentCoroutineContext()[ContinuationInterceptor]!!
        Client(config) { _ ->
            withContext(testThread) {
                val n = calls.incrementAndGet()
                if (settled.get()) calledAgain.complete(n)
                bad
            }
        }.use { client ->
            val e = withTimeout(30_000) { assertThrows<TokenRelayException.Unauthorized>("connect") { client.connect(contextId) } }
            settled.set(true)
            assertEq(e.code, "unauthorized", "server code")
            assertEq(calls.get(), 2, "provider calls (the key, then one fresh key at once)")
            // Failed: not one more call. A connection that kept retrying
            // would call again within 100 ms; waits for that call itself,
            // bounded (ten delays).
            val again = withTimeoutOrNull(1_000) { calledAgain.await() }
            check(again == null) { "the provider was called after connect gave up (call $again)" }
        }
    },

    Test("a key always refused with maxReconnectAttempts = 0: Unauthorized after exactly two provider calls") { server ->
        // The one fresh key at once spends no retry budget; with none left,
        // the second refusal is final and connect ends with it at once (its
        // timeout, 10 minutes, is far beyond this test's bound).
        val contextId = server.newContext()
        val bad = forged(server.admin.generateClientKey(server.orgId, contextId, null).token())
        val calls = AtomicInteger(0)
        val settled = AtomicBoolean(false)
        val calledAfter = CompletableDeferred<Int>()
        val config = ClientConfig(wsUrl = server.wsUrl, connectTimeout = 600_000.milliseconds, maxReconnectAttempts = 0)
        Client(config) { _ ->
            val n = calls.incrementAndGet()
            if (settled.get()) calledAfter.complete(n)
            bad
        }.use { client ->
            val e = withTimeout(30_000) { assertThrows<TokenRelayException.Unauthorized>("connect") { client.connect(contextId) } }
            settled.set(true)
            assertEq(e.code, "unauthorized", "server code")
            assertEq(calls.get(), 2, "provider calls (the key, then one fresh key at once)")
            val again = withTimeoutOrNull(1_000) { calledAfter.await() }
            check(again == null) { "the provider was called again after connect gave up (call $again)" }
        }
    },

    Test("admin client: agents, contexts, keys") { server ->
        val contextId = server.newContext("[tokens=2]")
        val context = server.admin.getContext(contextId)
        assertEq(context.contextId(), contextId, "context id")
        check(context.rawJson().contains(contextId)) { "raw json" }
        val agents = server.admin.listAgents()
        check(agents.any { it.agentId == context.agentId() }) { "agent missing from ${agents.map { it.agentId }}" }
        val key = server.admin.generateClientKey(server.orgId, contextId, 60uL)
        val token = key.token()
        check(token.count { it == '.' } == 2) { "not a JWT" }
        check("[redacted]" !in token) { "token" }
        // Logging the whole key must not log the credential.
        check(token !in key.toString()) { "the key's toString() shows the token" }
        check(key.apiKeyId().isNotEmpty() && key.orgId() == server.orgId) { "key ids" }
        server.admin.deleteContext(contextId)
        assertThrows<TokenRelayException.NotFound>("deleted context") { server.admin.getContext(contextId) }
    },
)
