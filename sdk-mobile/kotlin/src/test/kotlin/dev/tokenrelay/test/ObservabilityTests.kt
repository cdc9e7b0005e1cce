// What the SDK says about itself, against the real server: `stats()`
// counts a real reconnect, and the `ClientConfig.logger` callback hears the
// connection's life (attached, lost with its cause, resumed with its
// counts, closed) at the level asked, and never a key.
package dev.tokenrelay.test

import dev.tokenrelay.Client
import dev.tokenrelay.ClientConfig
import dev.tokenrelay.Event
import dev.tokenrelay.LogLevel
import dev.tokenrelay.Logger
import dev.tokenrelay.ResponseStatus
import dev.tokenrelay.use

private fun tokens(n: Int) = (0 until n).joinToString(" ") { "t$it" }

/** Keeps every record the SDK hands it. */
private class Recorder : Logger {
    val records: MutableList<Triple<LogLevel, String, String>> =
        java.util.Collections.synchronizedList(mutableListOf())

    override fun log(level: LogLevel, target: String, message: String) {
        records.add(Triple(level, target, message))
    }

    fun lines(): List<String> = synchronized(records) { records.map { it.third } }
}

fun observabilityTests(): List<Test> = listOf(
    Test("stats() counts a real reconnect; the config's logger hears it, never a key") { server ->
        val contextId = server.newContext()
        val provider = CountingProvider(server)
        val recorder = Recorder()
        val config = ClientConfig(
            wsUrl = server.wsUrl,
            refreshAhead = false,
            logger = recorder,
            logLevel = LogLevel.DEBUG,
        )
        var replayed = 0uL
        Client(config, provider::token).use { client ->
            client.connect(contextId).use { conn ->
                val first = conn.stats()
                assertEq(Triple(first.connects, first.reconnects, first.tokens), Triple(1uL, 0uL, 0uL), "stats at connect")
                val events = EventReader(conn.events())
                try {
                    val request = conn.sendMessage("[tokens=60 pace_ms=3] go")
                    var count = 0
                    var response: dev.tokenrelay.Response? = null
                    while (response == null) {
                        when (val e = events.next()) {
                            is Event.Token -> if (++count == 10) server.fault(contextId, "drop")
                            is Event.ResponseComplete ->
                                if (e.response.requestId?.toLong() == request) response = e.response
                            else -> {}
                        }
                    }
                    assertEq(response.status, ResponseStatus.COMPLETE, "status")
                    assertEq(response.text, tokens(60), "text")
                } finally {
                    events.cancel()
                }
                val s = conn.stats()
                assertEq(listOf(s.connects, s.reconnects, s.resumes, s.interrupted), listOf(2uL, 1uL, 1uL, 0uL), "stats after the drop: $s")
                assertEq(s.tokens, 60uL, "tokens: $s")
                assertEq(s.tokenFetches, provider.calls.get().toULong(), "token fetches: $s")
                check(s.framesReceived > 60uL && s.bytesReceived > s.framesReceived) { "$s" }
                replayed = s.replayed
            }
        }
        val lines = recorder.lines()
        val text = lines.joinToString("\n")
        check(recorder.records.all { it.second.startsWith("tokenrelay") }) { "a record from another crate: $text" }
        check(recorder.records.any { it.first == LogLevel.DEBUG }) { "no debug record at LogLevel.DEBUG: $text" }
        check(recorder.records.none { it.first == LogLevel.TRACE }) { "a trace record above the level asked: $text" }
        val attached = lines.firstOrNull { it.startsWith("attached to the context") }
        check(attached != null && "context_id=$contextId" in attached) { "the attachment, with its context: $text" }
        val lost = recorder.records.firstOrNull { it.third.startsWith("connection lost; reconnecting") }
        check(lost != null && lost.first == LogLevel.INFO && "retry_in_ms=" in lost.third && "cause=" in lost.third) { "the drop: $text" }
        val again = lines.firstOrNull { it.startsWith("attached to the context again") }
        check(again != null && "resumed=true" in again && "replayed=$replayed" in again) { "the resume, with its counts: $text" }
        check(lines.any { it.startsWith("connection closed") && "tokens=60" in it }) { "the close, with its stats: $text" }
        check(provider.tokens.size >= 2) { "a fresh key per connection" }
        for (key in provider.tokens + server.orgKey) {
            // Any 20 characters of a key would be a leak, not only the whole.
            check(key.takeLast(20) !in text) { "a credential reached the logger" }
        }
    },
)
