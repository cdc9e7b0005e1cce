// The Kotlin flows against the real server: `events()` as a hot SharedFlow
// that several collectors read in full at once, `state` as a StateFlow that
// follows a real reconnect with nobody collecting events, and the
// Duration-typed ClientConfig refusing what has no meaning.
package dev.tokenrelay.test

import dev.tokenrelay.Client
import dev.tokenrelay.ClientConfig
import dev.tokenrelay.Connection
import dev.tokenrelay.ConnectionState
import dev.tokenrelay.Event
import dev.tokenrelay.ResponseStatus
import dev.tokenrelay.endsConnection
import dev.tokenrelay.untilEnded
import dev.tokenrelay.use
import java.util.Collections
import kotlin.time.Duration
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.launch
import kotlinx.coroutines.withTimeout

/** What one collector saw of a reply. */
private class Seen(val tokens: List<String>, val text: String, val status: ResponseStatus)

/**
 * Collects [conn]'s events (subscribed before this returns) until the reply
 * to the request that [requestOf] yields completes.
 */
private fun kotlinx.coroutines.CoroutineScope.collectReply(
    conn: Connection,
    requestOf: kotlinx.coroutines.Deferred<Long>,
) = async(Dispatchers.Default, start = CoroutineStart.UNDISPATCHED) {
    val tokens = mutableListOf<String>()
    var mine: String? = null
    val done = conn.events().first { e ->
        when (e) {
            is Event.ResponseStarted -> if (e.requestId?.toLong() == requestOf.await()) mine = e.responseId
            is Event.Token -> if (e.responseId == mine) tokens.add(e.token)
            else -> {}
        }
        e is Event.ResponseComplete && e.response.id == mine
    } as Event.ResponseComplete
    Seen(tokens, done.response.text, done.response.status)
}

private fun tokenText(n: Int) = (0 until n).joinToString(" ") { "t$it" }

fun flowTests(): List<Test> = listOf(
    Test("events(): two collectors both see every token of a reply, a third from when it subscribes") { server ->
        val contextId = server.newContext()
        val provider = CountingProvider(server)
        Client(ClientConfig(wsUrl = server.wsUrl), provider::token).use { client ->
            client.connect(contextId).use { conn ->
                assertEq(conn.events() === conn.events(), true, "one shared flow")
                coroutineScope {
                    val first = kotlinx.coroutines.CompletableDeferred<Long>()
                    val a = collectReply(conn, first)
                    val b = collectReply(conn, first)
                    first.complete(conn.sendMessage("[tokens=300] go"))
                    val (seenA, seenB) = withTimeout(20_000) { a.await() to b.await() }
                    for ((name, seen) in listOf("first collector" to seenA, "second collector" to seenB)) {
                        assertEq(seen.status, ResponseStatus.COMPLETE, "$name: status")
                        assertEq(seen.tokens.size, 300, "$name: token events (every one, once)")
                        assertEq(seen.tokens.joinToString(""), tokenText(300), "$name: the tokens' text")
                        assertEq(seen.text, tokenText(300), "$name: the reply's text")
                    }
                    // A collector that subscribes now sees the next reply in
                    // full, alongside the two, and nothing of the first.
                    val second = kotlinx.coroutines.CompletableDeferred<Long>()
                    val c = collectReply(conn, second)
                    val a2 = collectReply(conn, second)
                    second.complete(conn.sendMessage("[tokens=50] again"))
                    val (seenC, seenA2) = withTimeout(20_000) { c.await() to a2.await() }
                    assertEq(seenC.tokens.joinToString(""), tokenText(50), "late collector: the second reply")
                    assertEq(seenA2.tokens.joinToString(""), tokenText(50), "first collector again: the second reply")
                }
            }
        }
    },

    Test("events(): a new collector for each reply, subscribing after the send: 400 quick replies, none lost") { server ->
        // The pattern of a screen that reads one reply at a time: send, then
        // `first { complete }`. Each collector leaves as the next reply
        // starts, so the pump pauses and resumes hundreds of times, within
        // a millisecond of a batch arriving; a reply whose events were
        // dropped or that found no pump running hangs here.
        val contextId = server.newContext()
        Client(ClientConfig(wsUrl = server.wsUrl), CountingProvider(server)::token).use { client ->
            client.connect(contextId).use { conn ->
                repeat(400) { round ->
                    val request = conn.sendMessage("[tokens=3 pace_ms=0] r$round")
                    var mine: String? = null
                    val tokens = mutableListOf<String>()
                    val done = withTimeout(10_000) {
                        conn.events().first { e ->
                            when (e) {
                                is Event.ResponseStarted -> if (e.requestId?.toLong() == request) mine = e.responseId
                                is Event.Token -> if (e.responseId == mine) tokens.add(e.token)
                                else -> {}
                            }
                            e is Event.ResponseComplete && e.response.requestId?.toLong() == request
                        }
                    } as Event.ResponseComplete
                    assertEq(done.response.status, ResponseStatus.COMPLETE, "round $round: status")
                    assertEq(tokens.joinToString(""), tokenText(3), "round $round: every token, once, in order")
                }
            }
        }
    },

    Test("events(): every collector ends with the terminal state; one subscribing after close gets it at once") { server ->
        val contextId = server.newContext()
        val provider = CountingProvider(server)
        Client(ClientConfig(wsUrl = server.wsUrl), provider::token).use { client ->
            val conn = client.connect(contextId)
            coroutineScope {
                val seen = List(2) { Collections.synchronizedList(mutableListOf<Event>()) }
                val readers = seen.map { into ->
                    async(Dispatchers.Default, start = CoroutineStart.UNDISPATCHED) {
                        conn.events().untilEnded().collect { into.add(it) }
                        synchronized(into) { into.toList() }
                    }
                }
                assertEq(conn.ask("[echo] hi").text, "hi", "reply")
                // close() discards the events nobody has read yet: wait until
                // both collectors have the reply.
                withTimeout(10_000) {
                    while (seen.any { l -> synchronized(l) { l.none { it is Event.ResponseComplete } } }) kotlinx.coroutines.delay(5)
                }
                conn.close()
                for ((i, r) in readers.withIndex()) {
                    val seen = withTimeout(10_000) { r.await() }
                    check(seen.last().endsConnection) { "collector $i: last event ${seen.last()}" }
                    assertEq((seen.last() as Event.StateChanged).change.state, ConnectionState.CLOSED, "collector $i: final state")
                    check(seen.any { it is Event.ResponseComplete }) { "collector $i saw no reply: $seen" }
                }
                val late = withTimeout(10_000) { conn.events().untilEnded().toList() }
                check(late.isNotEmpty() && late.last().endsConnection) { "a collector after close: $late" }
                check(late.none { it is Event.Token }) { "a collector after close saw old tokens: $late" }
            }
        }
    },

    Test("state: a StateFlow that follows a real reconnect with no events collector") { server ->
        val contextId = server.newContext()
        val provider = CountingProvider(server)
        Client(ClientConfig(wsUrl = server.wsUrl, refreshAhead = false), provider::token).use { client ->
            val conn = client.connect(contextId)
            assertEq(conn.state.value, ConnectionState.CONNECTED, "state after connect")
            val seen = Collections.synchronizedList(mutableListOf<ConnectionState>())
            coroutineScope {
                val watcher = launch(Dispatchers.Default, start = CoroutineStart.UNDISPATCHED) {
                    conn.state.collect { seen.add(it) }
                }
                server.fault(contextId, "drop")
                // Down, then up again: the StateFlow shows both without
                // anyone reading events() (the collector was subscribed
                // before the drop, so it cannot come too late for either).
                fun downThenUp(): Boolean {
                    val snapshot = synchronized(seen) { seen.toList() }
                    val down = snapshot.indexOfFirst { it != ConnectionState.CONNECTED }
                    return down > 0 && ConnectionState.CONNECTED in snapshot.subList(down, snapshot.size)
                }
                withTimeout(20_000) { while (!downThenUp()) kotlinx.coroutines.delay(5) }
                assertEq(conn.state.value, ConnectionState.CONNECTED, "state after the reconnect")
                assertEq(conn.stateChange.value.state, ConnectionState.CONNECTED, "stateChange after the reconnect")
                check(provider.calls.get() >= 2) { "no fresh key for the reconnect: ${provider.calls.get()} calls" }
                assertEq(conn.ask("[echo] back").text, "back", "reply after the reconnect")
                conn.close()
                assertEq(conn.state.value, ConnectionState.CLOSED, "state after close()")
                withTimeout(10_000) { while (seen.lastOrNull() != ConnectionState.CLOSED) kotlinx.coroutines.delay(5) }
                watcher.cancel()
                assertEq(seen.first(), ConnectionState.CONNECTED, "first state collected")
            }
        }
    },

    Test("ClientConfig: Durations and Ints, negative or infinite refused") { server ->
        val bad = listOf(
            "negative timeout" to ClientConfig(wsUrl = server.wsUrl, connectTimeout = (-1).seconds),
            "infinite timeout" to ClientConfig(wsUrl = server.wsUrl, requestTimeout = Duration.INFINITE),
            "negative count" to ClientConfig(wsUrl = server.wsUrl, maxQueued = -1),
        )
        for ((name, config) in bad) {
            assertThrows<IllegalArgumentException>(name) { Client(config) { _ -> "unused" } }
        }
    },
)
