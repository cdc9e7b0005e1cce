// Client-side tools and whole replies (#20), against the suite's server and
// against one in base-protocol mode (the hosted service's behaviour: a
// reply's client-side tool calls and events come after its on_stop_token,
// the request's `"result": null` last). In both, ask() and
// sendToolResponses() return the reply whole.
//
// The scripted engine's continuation of a tool answer never calls a tool
// itself (reference-server/ENGINE.md: it replies "Tool results: …"), so
// "two rounds" are two tool turns of one conversation, each answered by
// the same loop, the first with two tools at once.
package dev.tokenrelay.test

import dev.tokenrelay.Client
import dev.tokenrelay.ClientConfig
import dev.tokenrelay.ClientToolCall
import dev.tokenrelay.Connection
import dev.tokenrelay.Event
import dev.tokenrelay.Response
import dev.tokenrelay.ResponseStatus
import dev.tokenrelay.ToolAnswer
import dev.tokenrelay.use
import kotlinx.coroutines.withTimeout

private const val WAIT_MS = 30_000L

/** Runs [body] on a connection to a fresh context of [server]. */
private suspend fun withConnection(server: ReferenceServer, body: suspend (Connection) -> Unit) {
    val contextId = server.newContext()
    val provider = CountingProvider(server)
    Client(ClientConfig(wsUrl = server.wsUrl), provider::token).use { client ->
        client.connect(contextId).use { conn -> body(conn) }
    }
}

private suspend fun Connection.askWithin(text: String): Response = withTimeout(WAIT_MS) { ask(text) }

private suspend fun Connection.answerWithin(answers: List<ToolAnswer>): Response =
    withTimeout(WAIT_MS) { sendToolResponses(answers) }

private fun Response.toolNames() = clientSideToolCalls.map { it.toolName }

/** The README's loop: ask, then answer while the reply asks for tools.
 * Returns the last reply and every reply that asked for tools. */
private suspend fun Connection.toolLoop(text: String, runTool: (ClientToolCall) -> String): Pair<Response, List<Response>> {
    var reply = askWithin(text)
    val asked = mutableListOf<Response>()
    while (reply.clientSideToolCalls.isNotEmpty()) {
        asked += reply
        check(asked.size <= 5) { "the tool loop does not end" }
        reply = answerWithin(reply.clientSideToolCalls.map { ToolAnswer(it.toolCallId, runTool(it)) })
    }
    return reply to asked
}

private suspend fun replyMadeOnlyOfAToolCall(server: ReferenceServer) = withConnection(server) { conn ->
    val first = conn.askWithin("[tokens=0 client_tool=get_time]")
    assertEq(first.status, ResponseStatus.COMPLETE, "status")
    assertEq(first.text, "", "text")
    assertEq(first.toolNames(), listOf("get_time"), "client-side calls of $first")
    val id = first.clientSideToolCalls[0].toolCallId
    val after = conn.answerWithin(listOf(ToolAnswer(id, "12:00")))
    assertEq(after.status, ResponseStatus.COMPLETE, "continuation status")
    check(after.id != first.id) { "a continuation is a new response" }
    check(after.requestId != null && after.requestId != first.requestId) { "continuation request ${after.requestId}" }
    assertEq(after.text, "Tool results: $id=12:00", "continuation text")
    assertEq(after.clientSideToolCalls, emptyList(), "continuation calls")
}

private suspend fun textThenToolsAndEvents(server: ReferenceServer) = withConnection(server) { conn ->
    val first = conn.askWithin("[client_tool=get_location events=1] where am I?")
    assertEq(first.status, ResponseStatus.COMPLETE, "status")
    assertEq(first.text, "You said: where am I?", "text")
    assertEq(first.toolNames(), listOf("get_location"), "client-side calls of $first")
    assertEq(first.events.size, 1, "events of $first")
    val id = first.clientSideToolCalls[0].toolCallId
    // The vararg form.
    val after = withTimeout(WAIT_MS) { conn.sendToolResponses(id to "52.52,13.40") }
    assertEq(after.status, ResponseStatus.COMPLETE, "continuation status")
    assertEq(after.text, "Tool results: $id=52.52,13.40", "continuation text")
}

private suspend fun twoRoundsOfTools(server: ReferenceServer) = withConnection(server) { conn ->
    val outputs = mapOf("get_location" to "52.52,13.40", "get_time" to "12:00", "get_weather" to "sunny")
    val answered = mutableListOf<String>()
    val runTool = { call: ClientToolCall -> answered += call.toolName; outputs.getValue(call.toolName) }
    // Round one: two tools in one reply, answered together.
    var (last, asked) = conn.toolLoop("[client_tool=get_location client_tool=get_time] where and when?", runTool)
    assertEq(asked.map { it.toolNames() }, listOf(listOf("get_location", "get_time")), "replies that asked")
    val ids = asked[0].clientSideToolCalls.map { it.toolCallId }
    assertEq(last.status, ResponseStatus.COMPLETE, "status")
    assertEq(last.text, "Tool results: ${ids[0]}=52.52,13.40, ${ids[1]}=12:00", "first continuation")
    // Round two, in the same conversation, after the continuation.
    conn.toolLoop("[client_tool=get_weather events=2] and the weather?", runTool).let { last = it.first; asked = it.second }
    assertEq(asked.map { it.toolNames() }, listOf(listOf("get_weather")), "replies that asked")
    assertEq(asked[0].text, "You said: and the weather?", "text")
    assertEq(asked[0].events.size, 2, "events")
    assertEq(last.text, "Tool results: ${asked[0].clientSideToolCalls[0].toolCallId}=sunny", "second continuation")
    assertEq(answered, listOf("get_location", "get_time", "get_weather"), "tools run")
}

/** The reply's tool calls and events reach the app both as events (never
 * dropped) and attached to the reply ResponseComplete hands over: in base
 * mode they follow the stop, in full mode they precede it. */
private suspend fun trailingNotifications(server: ReferenceServer) = withConnection(server) { conn ->
    val events = EventReader(conn.events())
    try {
        val request = conn.sendMessage("[tokens=3 client_tool=get_location events=2] hi")
        val seen = mutableListOf<Event>()
        val done = withTimeout(WAIT_MS) {
            var done: Response? = null
            while (done == null) {
                when (val e = events.next()) {
                    is Event.ErrorEvent -> throw TestFailure("error event: ${e.error}")
                    is Event.ResponseComplete -> if (e.response.requestId?.toLong() == request) done = e.response
                    is Event.Token, is Event.ClientSideToolCalls, is Event.AgentEvents -> seen += e
                    else -> {}
                }
            }
            done
        }
        val kinds = seen.map { it::class.simpleName }
        assertEq(seen.count { it is Event.Token }, 3, "tokens in $kinds")
        val calls = seen.filterIsInstance<Event.ClientSideToolCalls>()
        val agentEvents = seen.filterIsInstance<Event.AgentEvents>()
        assertEq(calls.map { it.responseId }, listOf(done.id), "ClientSideToolCalls events in $kinds")
        assertEq(agentEvents.map { it.responseId }, listOf(done.id), "AgentEvents events in $kinds")
        assertEq(done.status, ResponseStatus.COMPLETE, "status")
        assertEq(done.text, "t0 t1 t2", "text")
        assertEq(done.clientSideToolCalls, calls[0].toolCalls, "the reply's client-side calls")
        assertEq(done.events, agentEvents[0].events, "the reply's events")
        assertEq(done.events.size, 2, "events")
        assertEq(conn.response(done.id), done, "the connection's record of the reply")
    } finally {
        events.cancel()
    }
}

fun toolLoopTests(): List<Test> {
    val cases: List<Pair<String, suspend (ReferenceServer) -> Unit>> = listOf(
        "a reply made only of a tool call" to ::replyMadeOnlyOfAToolCall,
        "text, then tools and events, in one reply" to ::textThenToolsAndEvents,
        "two rounds of tools through the loop" to ::twoRoundsOfTools,
        "trailing tool calls and events: events and part of the reply" to ::trailingNotifications,
    )
    return cases.map { (name, body) -> Test("tools: $name") { server -> body(server) } } +
        cases.map { (name, body) -> Test("base protocol: tools: $name") { _ -> body(BaseProtocolServer.get()) } }
}
