// Every scenario of tests/scenarios/ played through the Kotlin SDK, the way
// sdk-python/tests/test_scenarios.py and tests/e2e/src/scenario.rs play them.
package dev.tokenrelay.test

import dev.tokenrelay.Client
import dev.tokenrelay.ClientConfig
import dev.tokenrelay.Connection
import dev.tokenrelay.ConnectionState
import dev.tokenrelay.Event
import dev.tokenrelay.Response
import dev.tokenrelay.ResponseStatus
import dev.tokenrelay.ToolAnswer
import dev.tokenrelay.use
import java.io.File
import kotlinx.coroutines.DelicateCoroutinesApi
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.GlobalScope
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.launch
import kotlinx.coroutines.withTimeout

private const val STEP_TIMEOUT_MS = 30_000L

fun scenarioDir(): File {
    val root = System.getenv("TOKENRELAY_REPO") ?: error("TOKENRELAY_REPO must point at the workspace root")
    return File(root, "tests/scenarios")
}

@Suppress("UNCHECKED_CAST")
fun scenarioTests(): List<Test> =
    scenarioDir().listFiles { f -> f.name.endsWith(".json") }!!.sortedBy { it.name }.map { file ->
        Test("scenario ${file.nameWithoutExtension}") { server ->
            playScenario(server, file.nameWithoutExtension, parseJson(file.readText()) as Map<String, Any?>)
        }
    }

@Suppress("UNCHECKED_CAST")
private suspend fun playScenario(server: ReferenceServer, name: String, scenario: Map<String, Any?>) {
    assertEq(scenario["name"], name, "scenario name")
    val agent = (scenario["agent"] as Map<String, Any?>?) ?: emptyMap()
    val contextId = server.newContext(agent["prompt"] as String? ?: "", agent["agent_speaks_first"] as Boolean? ?: false)
    val provider = CountingProvider(server)
    val client = Client(ClientConfig(wsUrl = server.wsUrl), provider::token)
    val seen = mutableSetOf<String>()
    var previous: Response? = null
    client.connect(contextId).use { conn ->
        // One collector for the whole scenario, as an app would have.
        val events = EventReader(conn.events())
        for ((i, step) in (scenario["steps"] as List<Map<String, Any?>>).withIndex()) {
            val request: Long? = when {
                "send" in step -> conn.sendMessage(step["send"] as String)
                "tool_responses" in step -> {
                    val calls = previous!!.clientSideToolCalls
                    val answers = (step["tool_responses"] as List<Map<String, Any?>>).map {
                        ToolAnswer(calls[(it["call"] as Long).toInt()].toolCallId, it["response"] as String)
                    }
                    conn.sendToolResponses(answers)
                }
                else -> {
                    check(step["await_unsolicited"] == true) { "step $i has nothing to do" }
                    null
                }
            }
            val faults = (step["faults"] as List<Map<String, Any?>>?) ?: emptyList()
            val expect = step["expect"] as Map<String, Any?>
            val r = withTimeout(STEP_TIMEOUT_MS) {
                follow(server, conn, events, contextId, request, faults, "events" in expect, seen)
            }
            for (f in faults) {
                if (f["after_reply"] == true) {
                    inject(server, conn, contextId, f["fault"] as String)
                    // As the Python runner: wait for the reconnect so a message
                    // is not written into the dying socket (core/server race).
                    if (f["fault"] != "stop") withTimeout(STEP_TIMEOUT_MS) { events.reconnected() }
                }
            }
            checkExpect(expect, r, provider.calls.get())
            previous = r
        }
        events.cancel()
    }
    client.close()
}

/**
 * One long-lived collector of a connection's `events()` flow, shared by the
 * steps of a test (an app has one collector too).
 */
@OptIn(DelicateCoroutinesApi::class)
class EventReader(flow: Flow<Event>) {
    private val channel = Channel<Event>(Channel.UNLIMITED)
    private val job = GlobalScope.launch(Dispatchers.Default) {
        try {
            flow.collect { channel.send(it) }
        } finally {
            channel.close()
        }
    }

    /** The next event; throws once the flow has completed. */
    suspend fun next(): Event = channel.receive()

    /** The next event, or null once the flow has completed. */
    suspend fun nextOrNull(): Event? = channel.receiveCatching().getOrNull()

    /** Reads until the connection has dropped and is connected again. */
    suspend fun reconnected() {
        var dropped = false
        while (true) {
            val e = next()
            if (e is Event.StateChanged) {
                if (e.change.state != ConnectionState.CONNECTED) dropped = true
                else if (dropped) return
            }
        }
    }

    /** Stops collecting. */
    fun cancel() = job.cancel()
}

private suspend fun inject(server: ReferenceServer, conn: Connection, contextId: String, fault: String) {
    if (fault == "stop") conn.stop() else server.fault(contextId, fault)
}

private suspend fun follow(
    server: ReferenceServer,
    conn: Connection,
    events: EventReader,
    contextId: String,
    request: Long?,
    faults: List<Map<String, Any?>>,
    wantsEvents: Boolean,
    seen: MutableSet<String>,
): Response {
    var mine: String? = null
    var tokens = 0L
    val pending = faults.filter { "after_tokens" in it }.toMutableList()
    while (true) {
        when (val e = events.next()) {
            is Event.ResponseStarted ->
                if (e.requestId?.toLong() == request && mine == null) mine = e.responseId
            is Event.Token -> if (e.responseId == mine) {
                tokens++
                for (f in pending.filter { it["after_tokens"] == tokens }) {
                    pending.remove(f)
                    inject(server, conn, contextId, f["fault"] as String)
                }
            }
            is Event.ResponseComplete -> {
                val r = e.response
                check(seen.add(r.id)) { "response ${r.id} completed twice" }
                if (r.requestId?.toLong() == request && (mine == null || mine == r.id)) {
                    if (wantsEvents && r.events.isEmpty()) return waitForEvents(conn, events, r)
                    return r
                }
            }
            is Event.RequestFailed ->
                if (e.requestId.toLong() == request) throw TestFailure("the request failed: ${e.error}")
            is Event.ErrorEvent -> throw TestFailure("error event: ${e.error}")
            is Event.StateChanged ->
                if (e.change.state == ConnectionState.CLOSED || e.change.state == ConnectionState.FAILED) {
                    throw TestFailure("the connection ended: ${e.change.cause}")
                }
            else -> {}
        }
    }
}

private suspend fun waitForEvents(conn: Connection, events: EventReader, r: Response): Response {
    while (true) {
        val e = events.next()
        if (e is Event.AgentEvents && e.responseId == r.id) {
            return conn.response(r.id) ?: throw TestFailure("response ${r.id} evicted")
        }
    }
}

private fun statusName(s: ResponseStatus) = s.name.lowercase()

@Suppress("UNCHECKED_CAST")
private fun checkExpect(expect: Map<String, Any?>, r: Response, fetches: Int) {
    val problems = mutableListOf<String>()
    if (statusName(r.status) != expect["status"]) problems += "status ${r.status}, expected ${expect["status"]}"
    (expect["text"] as String?)?.let { if (r.text != it) problems += "text '${r.text}', expected '$it'" }
    (expect["text_is_prefix_of"] as String?)?.let { if (!it.startsWith(r.text)) problems += "text '${r.text}' is not a prefix" }
    (expect["text_starts_with"] as String?)?.let { if (!r.text.startsWith(it)) problems += "text '${r.text}' does not start with '$it'" }
    (expect["text_ends_with"] as String?)?.let { if (!r.text.endsWith(it)) problems += "text '${r.text}' does not end with '$it'" }
    (expect["tool_calls"] as List<String>?)?.let { names ->
        if (r.toolCalls.map { it.toolName } != names) problems += "tool calls ${r.toolCalls}"
    }
    (expect["tool_responses"] as Long?)?.let { if (r.toolResponses.size.toLong() != it) problems += "${r.toolResponses.size} tool responses" }
    (expect["events"] as Long?)?.let { if (r.events.size.toLong() != it) problems += "${r.events.size} events, expected $it" }
    (expect["client_side_tool_calls"] as List<String>?)?.let { names ->
        val got = r.clientSideToolCalls.map { it.toolName }
        if (got != names) problems += "client-side tool calls $got"
    }
    (expect["min_token_fetches"] as Long?)?.let { if (fetches < it) problems += "$fetches token fetches, expected at least $it" }
    check(problems.isEmpty()) { problems.joinToString("; ") }
}
