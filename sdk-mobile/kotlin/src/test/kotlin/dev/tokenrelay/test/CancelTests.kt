// Giving up on connect() while it is still trying (the same test as
// tests/e2e/tests/cancel.rs): the coroutine in connect() cancelled, directly
// or by a withTimeout around it, and a relay nobody answers at. Everything
// is released (no socket stays open on the server) and the token provider
// is not called again.
//
// Kotlin's connect() has no handle before it returns, so cancelling the
// coroutine is how a pending connect is closed; close() exists once
// connected.
package dev.tokenrelay.test

import dev.tokenrelay.Client
import kotlin.time.Duration
import kotlin.time.Duration.Companion.milliseconds
import dev.tokenrelay.ClientConfig
import dev.tokenrelay.TokenRelayException
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.util.concurrent.atomic.AtomicInteger
import kotlin.coroutines.ContinuationInterceptor
import kotlin.coroutines.CoroutineContext
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.currentCoroutineContext
import kotlinx.coroutines.delay
import kotlinx.coroutines.withContext
import kotlinx.coroutines.withTimeout
import kotlinx.coroutines.withTimeoutOrNull

/**
 * A token provider answering [key]: counts its calls and announces each.
 * Its body runs on [observer], the test's own thread (as an app's provider
 * may run on the main thread): the test then sees each call in order with
 * its own steps, never a call that began before connect() settled but
 * whose first line ran on another thread just after.
 */
private class Calls(private val key: String, private val observer: CoroutineContext) {
    val count = AtomicInteger(0)
    private val called = Channel<Int>(Channel.UNLIMITED)

    suspend fun token(@Suppress("UNUSED_PARAMETER") contextId: String): String = withContext(observer) {
        called.trySend(count.incrementAndGet())
        key
    }

    /** Waits until the provider has been called [n] times (bounded). */
    suspend fun reach(n: Int) = withTimeout(30_000) {
        while (count.get() < n) called.receive()
    }

    /** Whether the count goes beyond [n] within [windowMs]: waits for such a call itself. */
    suspend fun above(n: Int, windowMs: Long): Boolean = withTimeoutOrNull(windowMs) {
        while (count.get() <= n) called.receive()
        true
    } ?: false
}

/** The server's count of open WebSocket connections (`GET /health`). */
private suspend fun openSockets(server: ReferenceServer): Long = withContext(Dispatchers.IO) {
    val response = HttpClient.newHttpClient().send(
        HttpRequest.newBuilder(URI.create("${server.httpUrl}/health")).build(),
        HttpResponse.BodyHandlers.ofString(),
    )
    @Suppress("UNCHECKED_CAST")
    ((parseJson(response.body()) as Map<String, Any?>)["connections"] as Long)
}

/** Waits until the server holds no WebSocket (bounded). */
private suspend fun noSocketLeft(server: ReferenceServer) = withTimeout(30_000) {
    // Polls the count itself: the server has no event to await.
    while (openSockets(server) > 0) delay(10)
}

/**
 * A relay that accepts every connection and closes it at once: each attempt
 * fails after its TCP connect and the connection keeps retrying, fetching a
 * key each time. (A key the server refuses would not do: a fresh key refused
 * before any attachment fails connect() at once, see ClientTests.)
 */
private class HangingUp : AutoCloseable {
    private val listener = java.net.ServerSocket(0, 50, java.net.InetAddress.getLoopbackAddress())
    val wsUrl = "ws://127.0.0.1:${listener.localPort}/ws"
    private val acceptor = Thread {
        while (!listener.isClosed) {
            try {
                listener.accept().close()
            } catch (_: java.io.IOException) {
                // Closed: the test is over.
            }
        }
    }.apply { isDaemon = true; start() }

    override fun close() {
        listener.close()
        acceptor.join(5_000)
    }
}

/** The dispatcher the test runs on (the runner's runBlocking thread). */
private suspend fun testThread(): CoroutineContext = currentCoroutineContext()[ContinuationInterceptor]!!

// Quick retries: a connection still running after it was given up on would
// call the provider every 10–20 ms; 500 ms would see about 25 calls.
private const val WINDOW_MS = 500L

private fun quick(server: ReferenceServer, wsUrl: String = server.wsUrl, connectTimeout: Duration? = null) = ClientConfig(
    wsUrl = wsUrl, connectTimeout = connectTimeout, reconnectMinDelay = 10.milliseconds, reconnectMaxDelay = 20.milliseconds,
)

/**
 * Connects through a relay that hangs up on every attempt, lets [giveUp]
 * end the pending connect once the provider was called four times, then
 * checks what is left: no socket on the server, and no provider call but
 * one already under way (the connection's task learns that its connect was
 * dropped on a thread of its own, as in Rust).
 */
private suspend fun givesUpWhileRetrying(giveUp: suspend (Client, String, Calls) -> Unit) {
    // A server of its own: the sockets it counts are this test's.
    ReferenceServer.start().use { server ->
        val contextId = server.newContext()
        val calls = Calls(server.admin.generateClientKey(server.orgId, contextId, null).token(), testThread())
        HangingUp().use { relay ->
            Client(quick(server, relay.wsUrl), calls::token).use { client ->
                giveUp(client, contextId, calls)
                val after = calls.count.get()
                noSocketLeft(server)
                check(!calls.above(after + 1, WINDOW_MS)) { "the provider was called ${calls.count.get() - after} times after the cancel" }
            }
        }
    }
}

fun cancelTests(): List<Test> = listOf(
    Test("cancelling the coroutine in connect(): everything released, the provider not called again") { _ ->
        givesUpWhileRetrying { client, contextId, calls ->
            coroutineScope {
                val connecting = async(start = CoroutineStart.UNDISPATCHED) { client.connect(contextId) }
                // Trying: several failed attempts.
                calls.reach(4)
                check(!connecting.isCompleted) { "connect() ended by itself" }
                connecting.cancel()
                connecting.join()
                check(connecting.isCancelled) { "connect() was not cancelled" }
            }
        }
    },

    Test("a withTimeout around connect(): everything released, the provider not called again") { _ ->
        givesUpWhileRetrying { client, contextId, calls ->
            // What an app writes: its own deadline around connect (shorter
            // than connectTimeout, 30 s), which cancels the pending connect.
            val conn = withTimeoutOrNull(300) { client.connect(contextId) }
            check(conn == null) { "connected through a relay that hangs up" }
            check(calls.count.get() >= 2) { "${calls.count.get()} provider calls" }
        }
    },

    Test("an unreachable relay: connect() ends Transport at its timeout; the provider not called after") { server ->
        val contextId = server.newContext()
        val calls = Calls(server.admin.generateClientKey(server.orgId, contextId, null).token(), testThread())
        // A loopback port nothing listens on (bound, then released).
        val port = java.net.ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress()).use { it.localPort }
        Client(quick(server, "ws://127.0.0.1:$port/ws", connectTimeout = 300.milliseconds), calls::token).use { client ->
            // Settles at its 300 ms timeout; the bound only catches a hang.
            withTimeout(30_000) { assertThrows<TokenRelayException.Transport>("connect") { client.connect(contextId) } }
            val after = calls.count.get()
            check(after >= 2) { "$after provider calls" }
            // Exact: the core drops a fetch in flight before connect()
            // settles, and uniffi cancels its coroutine then, so no call
            // begins afterwards. A connection still retrying would call
            // every 10–20 ms: waits for such a call itself.
            check(!calls.above(after, WINDOW_MS)) { "the provider was called ${calls.count.get() - after} times after connect settled" }
        }
    },
)
