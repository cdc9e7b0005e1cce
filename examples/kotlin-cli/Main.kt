// A chat on the terminal with the Kotlin SDK, on the JVM.
//
// The phone's side is `Client` + `connect` + `events()`/`ask()`. A real app
// gets its client keys from its own backend; to stay self-contained this
// example plays the backend too, with the admin client and the org key the
// local server printed at bootstrap (never ship an org key in an app).
//
//   examples/kotlin-cli/run.sh            # starts a local server, then chats
//   examples/kotlin-cli/run.sh --check    # one scripted exchange, checked
package dev.tokenrelay.examples

import dev.tokenrelay.AdminClient
import dev.tokenrelay.Client
import dev.tokenrelay.ClientConfig
import dev.tokenrelay.ConnectionState
import dev.tokenrelay.Event
import dev.tokenrelay.NewAgent
import dev.tokenrelay.TokenRelayException
import dev.tokenrelay.use
import kotlin.system.exitProcess
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking

private val SHOWN_STATES = setOf(
    ConnectionState.RECONNECTING, ConnectionState.SUSPENDED, ConnectionState.FAILED, ConnectionState.CLOSED,
)

fun main(args: Array<String>) = runBlocking {
    val env = System.getenv()
    val httpUrl = env["TOKENRELAY_HTTP_URL"] ?: error("set TOKENRELAY_HTTP_URL (run.sh does)")
    val wsUrl = env["TOKENRELAY_WS_URL"] ?: error("set TOKENRELAY_WS_URL")
    val orgId = env["TOKENRELAY_ORG_ID"] ?: error("set TOKENRELAY_ORG_ID")
    val check = "--check" in args

    // --- the app's backend (server-side: it holds the org key) ---
    val backend = AdminClient(httpUrl, env["TOKENRELAY_ORG_KEY"] ?: error("set TOKENRELAY_ORG_KEY"))
    val agent = backend.createAgent(NewAgent(agentName = "cli", prompt = "", agentDescription = "kotlin-cli"))
    val contextId = backend.createContext(agent.agentId).contextId()
    suspend fun getClientToken(ctx: String): String = backend.generateClientKey(orgId, ctx, 120uL).token()

    // --- the app: a suspend token provider, called on every (re)connect ---
    val client = Client(ClientConfig(wsUrl = wsUrl)) { ctx -> getClientToken(ctx) }
    try {
        client.connect(contextId).use { conn ->
            coroutineScope {
                // One collector shows the stream; `ask` waits for whole replies.
                var replyDone = CompletableDeferred<Unit>()
                val printer = launch {
                    conn.events().collect { event ->
                        when (event) {
                            is Event.Token -> print(event.token)
                            is Event.ResponseComplete -> { println(); replyDone.complete(Unit) }
                            // Show the connection recovering by itself.
                            is Event.StateChanged -> if (event.change.state in SHOWN_STATES) {
                                System.err.println("[${event.change.state.name.lowercase()}, attempt ${event.change.attempt}]")
                            }
                            else -> {}
                        }
                    }
                }
                if (check) {
                    print("> ")
                    val reply = conn.ask("[tokens=8] hello from Kotlin")
                    replyDone.await()
                    val expected = (0 until 8).joinToString(" ") { "t$it" }
                    if (reply.text != expected) {
                        System.err.println("unexpected reply '${reply.text}'")
                        exitProcess(1)
                    }
                    println("ok: ${reply.status.name.lowercase()}, ${reply.text.length} characters")
                } else {
                    println("context $contextId; type a message (try \"[tokens=40 pace_ms=20] hi\"), empty line to quit")
                    while (true) {
                        print("> ")
                        val line = readlnOrNull()?.takeIf { it.isNotBlank() } ?: break
                        replyDone = CompletableDeferred()
                        conn.sendMessage(line)
                        replyDone.await()
                    }
                }
                printer.cancel()
            }
        }
    } catch (e: TokenRelayException) {
        System.err.println("tokenrelay: ${e.message}")
        exitProcess(1)
    }
    client.close()
}
