// The real reference server for the suite, started with the
// `dev.tokenrelay.testing` helper the SDK ships (kotlin/testing/): the binary
// from TOKENRELAY_SERVER_BIN (else PATH), fault injection on, relaxed
// limits, a fresh SQLite store in a temp dir, 127.0.0.1:0 (the same harness
// as sdk-python/tests/conftest.py and sdk-wasm/tests/harness.js).
package dev.tokenrelay.test

import dev.tokenrelay.AdminClient
import dev.tokenrelay.NewAgent
import dev.tokenrelay.testing.startReferenceServer
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.util.concurrent.atomic.AtomicInteger
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.withContext

/** The helper's server plus what only this suite needs: an admin client, fault injection, contexts, restarts. */
class ReferenceServer private constructor(
    /** The running server (`dev.tokenrelay.testing`). */
    val relay: dev.tokenrelay.testing.ReferenceServer,
) : AutoCloseable {
    /** REST base URL. */
    val httpUrl: String get() = relay.httpUrl

    /** WebSocket URL. */
    val wsUrl: String get() = relay.wsUrl

    /** The bootstrapped org. */
    val orgId: String get() = relay.orgId

    /** Its API key (server-side role). */
    val orgKey: String get() = relay.orgKey

    /** An admin client holding the org key (server-side role); it reaches whichever server is up. */
    val admin: AdminClient = AdminClient(relay.httpUrl, relay.orgKey)
    private val http: HttpClient = HttpClient.newHttpClient()

    /**
     * Injects a server-side fault (`drop`, `close_4001`, …) into [contextId]'s
     * sockets; returns how many sockets got it.
     */
    suspend fun fault(contextId: String, fault: String): Long = withContext(Dispatchers.IO) {
        val body = "{\"context_id\":${jsonString(contextId)},\"fault\":${jsonString(fault)}}"
        val request = HttpRequest.newBuilder(URI.create("$httpUrl/debug/faults"))
            .header("Authorization", "Bearer $orgKey")
            .header("Content-Type", "application/json")
            .POST(HttpRequest.BodyPublishers.ofString(body))
            .build()
        val response = http.send(request, HttpResponse.BodyHandlers.ofString())
        check(response.statusCode() in 200..299) { "fault $fault: HTTP ${response.statusCode()} ${response.body()}" }
        @Suppress("UNCHECKED_CAST")
        ((parseJson(response.body()) as Map<String, Any?>)["sockets"] as Long)
    }

    /** A context on a fresh agent. */
    suspend fun newContext(prompt: String = "", speaksFirst: Boolean = false): String {
        val agent = admin.createAgent(
            NewAgent(agentName = "kotlin test agent", prompt = prompt, agentDescription = "kotlin", agentSpeaksFirst = speaksFirst),
        )
        return admin.createContext(agent.agentId).contextId()
    }

    /**
     * Stops the server ([graceful]: SIGTERM, else SIGKILL), waits for it to
     * exit and starts it again on the same address with the same store.
     */
    suspend fun restart(graceful: Boolean) {
        withContext(Dispatchers.IO) { relay.restart(graceful) }
    }

    override fun close() = relay.close()

    companion object {
        /** The server's abuse limits are tested by its own suite; here they stay out of the way. */
        private val RELAXED_LIMITS = listOf(
            "--rate-limit-per-minute", "1000000",
            "--socket-frame-burst", "100000", "--socket-frames-per-sec", "100000",
            "--max-pending-invocations", "10000", "--max-sockets-per-ip", "100000",
            // A graceful stop (the restart tests) lets running replies finish
            // for this long, not the default 30 s.
            "--drain-timeout-secs", "1",
        )

        /**
         * Starts a server; [baseProtocol] starts it with `--base-protocol`
         * (the hosted service's behaviour: no extensions, a reply's
         * client-side tool calls and events after its stop, results last).
         */
        fun start(baseProtocol: Boolean = false): ReferenceServer = ReferenceServer(
            startReferenceServer(
                args = listOf("--scripted-pace-ms", "0", "--fault-injection") + RELAXED_LIMITS +
                    (if (baseProtocol) listOf("--base-protocol") else emptyList()),
                orgName = "kotlin",
            ),
        )
    }
}

/**
 * The suite's second server, in base-protocol mode: started on first use,
 * stopped when the JVM exits (the runner's `exitProcess` runs the hook).
 */
object BaseProtocolServer {
    private var server: ReferenceServer? = null

    @Synchronized
    fun get(): ReferenceServer = server ?: ReferenceServer.start(baseProtocol = true).also { s ->
        server = s
        Runtime.getRuntime().addShutdownHook(Thread { s.close() })
    }
}

/**
 * A token provider written in Kotlin: mints a client key scoped to the
 * context per call (what an app's backend does) and counts the calls.
 */
class CountingProvider(private val server: ReferenceServer) {
    val calls = AtomicInteger(0)
    val tokens = java.util.Collections.synchronizedList(mutableListOf<String>())

    suspend fun token(contextId: String): String {
        calls.incrementAndGet()
        val key = server.admin.generateClientKey(server.orgId, contextId, null).token()
        tokens.add(key)
        return key
    }
}
