// A server restart with clients attached, one of them mid-reply: graceful
// (SIGTERM: the server closes every socket with 1001 and exits) and abrupt
// (SIGKILL, as `kill -9`: no close frame, the kernel resets the sockets).
// Either way each connection reports the lost connection, reconnects by
// itself to the new server on the same address and store, the cut reply
// ends with a gapless prefix, INTERRUPTED (the replay buffer did not
// survive the restart), and the next ask
// works (the same test as tests/e2e/tests/restart.rs).
package dev.tokenrelay.test

import dev.tokenrelay.Client
import dev.tokenrelay.ConnectionState
import dev.tokenrelay.Event
import dev.tokenrelay.ResponseStatus
import dev.tokenrelay.Response
import dev.tokenrelay.TokenRelayException
import dev.tokenrelay.use
import kotlinx.coroutines.withTimeout

private fun numbered(n: Int) = (0 until n).joinToString(" ") { "t$it" }

/**
 * Reads [events] until the connection was lost and is connected again and,
 * when [request] is given, its reply has ended; checks the cause reported
 * and returns that reply.
 */
private suspend fun recovers(events: EventReader, request: Long?): Response? {
    var cause: TokenRelayException? = null
    var lost = false
    var back = false
    var reply: Response? = null
    withTimeout(30_000) {
        while (!(back && (request == null || reply != null))) {
            when (val e = events.next()) {
                is Event.StateChanged -> when (e.change.state) {
                    // The first cause: the cut itself (later attempts fail to
                    // reach the server while it restarts).
                    ConnectionState.RECONNECTING -> {
                        lost = true
                        cause = cause ?: e.change.cause
                    }
                    ConnectionState.CONNECTED -> if (lost) back = true
                    else -> {}
                }
                is Event.ResponseComplete -> if (request != null && e.response.requestId?.toLong() == request) reply = e.response
                else -> {}
            }
        }
    }
    check(cause is TokenRelayException.ConnectionLost || cause is TokenRelayException.Transport) { "cause $cause" }
    return reply
}

private suspend fun restartMidReply(graceful: Boolean) {
    ReferenceServer.start().use { server ->
        val provider: suspend (String) -> String = { ctx -> server.admin.generateClientKey(server.orgId, ctx, null).token() }
        Client(server.wsUrl, provider).use { client ->
            client.connect(server.newContext()).use { conn ->
                client.connect(server.newContext()).use { other ->
                    val events = EventReader(conn.events())
                    val otherEvents = EventReader(other.events())
                    try {
                        val request = conn.sendMessage("[tokens=2000 pace_ms=5] long")
                        val before = StringBuilder()
                        var count = 0
                        withTimeout(30_000) {
                            while (count < 20) {
                                val e = events.next()
                                if (e is Event.Token) {
                                    before.append(e.token)
                                    count++
                                }
                            }
                        }
                        server.restart(graceful)
                        val reply = recovers(events, request)!!
                        // Killed, the server sends nothing more. Shut down
                        // gracefully, it drains: every socket is closed (1001)
                        // before the reply is cut (`--drain-timeout-secs 1`), so
                        // the client never sees the cut either. Either way it
                        // resumes on the new server, whose replay buffer is new:
                        // the reply ends INTERRUPTED.
                        check(reply.status == ResponseStatus.INTERRUPTED) { "status of the cut reply: ${reply.status}" }
                        check(numbered(2000).startsWith(reply.text)) { "not a gapless prefix: ${reply.text.takeLast(40)}" }
                        check(reply.text.startsWith(before)) { "the tokens seen before the cut are not in the reply" }
                        recovers(otherEvents, null)
                        for (c in listOf(conn, other)) {
                            val after = withTimeout(30_000) { c.ask("[echo] after the restart") }
                            assertEq(after.text, "after the restart", "reply after the restart")
                            assertEq(after.status, ResponseStatus.COMPLETE, "status after the restart")
                        }
                    } finally {
                        events.cancel()
                        otherEvents.cancel()
                    }
                }
            }
        }
    }
}

fun restartTests(): List<Test> = listOf(
    Test("a graceful server restart (SIGTERM) mid-reply: lost connection reported, reply cut with a prefix, next ask works") { _ ->
        restartMidReply(graceful = true)
    },
    Test("an abrupt server restart (SIGKILL) mid-reply: lost connection reported, reply cut with a prefix, next ask works") { _ ->
        restartMidReply(graceful = false)
    },
)
