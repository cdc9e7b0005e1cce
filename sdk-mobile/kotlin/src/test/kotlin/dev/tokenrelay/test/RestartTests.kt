// A server restart with clients attached, one of them mid-reply: graceful
// (SIGTERM: the server closes every socket with 1001 and exits) and abrupt
// (SIGKILL, as `kill -9`: no close frame, the kernel resets the sockets).
// Either way each connection reports the lost connection, reconnects by
// itself to the new server on the same address and store, the cut reply
// ends with a gapless prefix, INTERRUPTED (the replay buffer did not
// survive the restart), and the next ask
// works (the same test as tests/e2e/tests/restart.rs).
package dev.tokenrelay.test

import dev.tokenrelay.AdminClient
import dev.tokenrelay.Client
import dev.tokenrelay.ConnectionState
import dev.tokenrelay.Event
import dev.tokenrelay.NewAgent
import dev.tokenrelay.ResponseStatus
import dev.tokenrelay.Response
import dev.tokenrelay.TokenRelayException
import dev.tokenrelay.use
import java.io.File
import java.nio.file.Files
import java.util.concurrent.TimeUnit
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.withContext
import kotlinx.coroutines.withTimeout

/**
 * A reference server that can be stopped (SIGTERM or SIGKILL) and started
 * again on the same address with the same store (the harness of
 * [ReferenceServer], kept apart so that one stays as it is).
 */
class RestartableServer private constructor(private val bin: String, private val dir: File, private val common: List<String>) : AutoCloseable {
    private var process: Process
    val httpUrl: String
    val wsUrl: String
    val orgId: String
    val orgKey: String

    init {
        val boot = ProcessBuilder(listOf(bin) + common + listOf("bootstrap", "--org-name", "kotlin")).start()
        val out = boot.inputStream.bufferedReader().readText()
        check(boot.waitFor() == 0) { "bootstrap failed: ${boot.errorStream.bufferedReader().readText()}" }
        val fields = out.split(Regex("\\s+")).filter { '=' in it }.associate { it.substringBefore('=') to it.substringAfter('=') }
        orgId = fields.getValue("org_id")
        orgKey = fields.getValue("org_api_key")
        val (p, urls) = serve("127.0.0.1:0")
        process = p
        httpUrl = urls.first
        wsUrl = urls.second
    }

    /** An admin client holding the org key; REST reaches whichever server is up. */
    val admin: AdminClient = AdminClient(httpUrl, orgKey)

    private fun serve(bind: String): Pair<Process, Pair<String, String>> {
        val pb = ProcessBuilder(
            listOf(bin) + common + listOf(
                "--bind", bind, "--fault-injection",
                "--socket-frame-burst", "100000", "--socket-frames-per-sec", "100000",
                "--max-pending-invocations", "10000", "--max-sockets-per-ip", "100000",
                // A graceful stop lets the running reply finish for 1 s, not the default 30 s.
                "--drain-timeout-secs", "1", "serve",
            ),
        )
        pb.environment()["TOKENRELAY_LOG"] = "info"
        pb.environment()["NO_COLOR"] = "1"
        pb.redirectOutput(ProcessBuilder.Redirect.DISCARD)
        val process = pb.start()
        val stderr = process.errorStream.bufferedReader()
        val ready = Regex("ready.*http=(\\S+).*ws=(\\S+)")
        val log = StringBuilder()
        var match: MatchResult? = null
        while (match == null) {
            val line = stderr.readLine() ?: break
            log.appendLine(line)
            match = ready.find(line.replace(Regex("\u001b\\[[0-9;]*m"), ""))
        }
        if (match == null) {
            process.destroyForcibly()
            error("the server did not start:\n$log")
        }
        // Keep draining the log so the server never blocks on a full pipe.
        Thread {
            try {
                stderr.useLines { lines -> lines.forEach { } }
            } catch (_: java.io.IOException) {
            }
        }.apply { isDaemon = true }.start()
        return process to (match.groupValues[1] to match.groupValues[2])
    }

    /** Stops the server ([graceful]: SIGTERM, else SIGKILL), waits for it to exit, starts it again in place. */
    suspend fun restart(graceful: Boolean) = withContext(Dispatchers.IO) {
        if (graceful) process.destroy() else process.destroyForcibly()
        check(process.waitFor(30, TimeUnit.SECONDS)) { "the server did not exit" }
        val (p, urls) = serve(java.net.URI.create(httpUrl).authority)
        process = p
        assertEq(urls, httpUrl to wsUrl, "the restarted server's address")
    }

    /** A context on a fresh agent. */
    suspend fun newContext(): String {
        val agent = admin.createAgent(NewAgent(agentName = "kotlin restart", prompt = "", agentDescription = "kotlin", agentSpeaksFirst = false))
        return admin.createContext(agent.agentId).contextId()
    }

    override fun close() {
        process.destroyForcibly()
        process.waitFor(10, TimeUnit.SECONDS)
        dir.deleteRecursively()
    }

    companion object {
        fun start(): RestartableServer {
            val bin = System.getenv("TOKENRELAY_SERVER_BIN")
                ?: error("TOKENRELAY_SERVER_BIN must point at target/release/tokenrelay-server")
            val dir = Files.createTempDirectory("tokenrelay-kotlin-restart-").toFile()
            val common = listOf("--db", File(dir, "store.sqlite3").path, "--rate-limit-per-minute", "1000000", "--scripted-pace-ms", "0")
            return RestartableServer(bin, dir, common)
        }
    }
}

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
    RestartableServer.start().use { server ->
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
