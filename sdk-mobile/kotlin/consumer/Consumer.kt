// A tiny application that depends on the published JVM artifact alone
// (tokenrelay-jvm-VERSION.jar and the dependencies its pom declares: JNA,
// kotlin-stdlib, kotlinx-coroutines-core). It runs with no
// -Djna.library.path: JNA must find libtokenrelay_mobile.so inside the jar.
// kotlin/consumer/run.sh compiles and runs it against a local reference
// server (sdk-mobile/test.sh). The backend's role (minting a client key per
// connect) is played with AdminClient, as examples/kotlin-cli does.
package example.consumer

import dev.tokenrelay.AdminClient
import dev.tokenrelay.Client
import dev.tokenrelay.ClientConfig
import dev.tokenrelay.ConnectionState
import dev.tokenrelay.Event
import dev.tokenrelay.NewAgent
import dev.tokenrelay.ResponseStatus
import dev.tokenrelay.use
import kotlin.system.exitProcess
import kotlin.time.Duration.Companion.seconds
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.async
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout

fun main(): Unit = runBlocking {
    val env = System.getenv()
    val backend = AdminClient(env.getValue("TOKENRELAY_HTTP_URL"), env.getValue("TOKENRELAY_ORG_KEY"))
    val orgId = env.getValue("TOKENRELAY_ORG_ID")
    val agent = backend.createAgent(NewAgent(agentName = "consumer", prompt = "", agentDescription = "jvm artifact"))
    val contextId = backend.createContext(agent.agentId).contextId()

    val config = ClientConfig(wsUrl = env.getValue("TOKENRELAY_WS_URL"), connectTimeout = 20.seconds)
    Client(config) { ctx -> backend.generateClientKey(orgId, ctx, 120uL).token() }.use { client ->
        client.connect(contextId).use { conn ->
            check(conn.state.value == ConnectionState.CONNECTED) { "state ${conn.state.value}" }
            val streamed = async(start = CoroutineStart.UNDISPATCHED) {
                val text = StringBuilder()
                conn.events().first { e ->
                    if (e is Event.Token) text.append(e.token)
                    e is Event.ResponseComplete
                }
                text.toString()
            }
            val reply = withTimeout(20_000) { conn.ask("[tokens=12] hello from a consumer") }
            val expected = (0 until 12).joinToString(" ") { "t$it" }
            val tokens = withTimeout(20_000) { streamed.await() }
            if (reply.status != ResponseStatus.COMPLETE || reply.text != expected || tokens != expected) {
                System.err.println("consumer: unexpected reply ${reply.status} '${reply.text}', streamed '$tokens'")
                exitProcess(1)
            }
            val library = System.getProperty("jna.library.path")
            println("consumer ok: ${reply.text.length} characters streamed and returned (jna.library.path=${library ?: "unset"})")
        }
    }
}
