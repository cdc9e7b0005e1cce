// The real reference server for the suite: the release binary, fault
// injection on, a fresh SQLite store in a temp dir, 127.0.0.1:0 (the same
// harness as sdk-python/tests/conftest.py and sdk-wasm/tests/harness.js).
package dev.tokenrelay.test

import dev.tokenrelay.AdminClient
import dev.tokenrelay.NewAgent
import java.io.File
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.nio.file.Files
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicInteger
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.withContext

class ReferenceServer private constructor(
    private val process: Process,
    private val dir: File,
    val httpUrl: String,
    val wsUrl: String,
    val orgId: String,
    val orgKey: String,
) : AutoCloseable {
    /** An admin client holding the org key (server-side role). */
    val admin: AdminClient = AdminClient(httpUrl, orgKey)
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

    override fun close() {
        process.destroy()
        if (!process.waitFor(10, TimeUnit.SECONDS)) process.destroyForcibly()
        dir.deleteRecursively()
    }

    companion object {
        /** The server's abuse limits are tested by its own suite; here they stay out of the way. */
        private val RELAXED_LIMITS = listOf(
            "--socket-frame-burst", "100000", "--socket-frames-per-sec", "100000",
            "--max-pending-invocations", "10000", "--max-sockets-per-ip", "100000",
            // A graceful stop lets running replies finish for this long, not the default 30 s.
            "--drain-timeout-secs", "1",
        )

        /**
         * Starts a server; [baseProtocol] starts it with `--base-protocol`
         * (the hosted service's behaviour: no extensions, a reply's
         * client-side tool calls and events after its stop, results last).
         */
        fun start(baseProtocol: Boolean = false): ReferenceServer {
            val bin = System.getenv("TOKENRELAY_SERVER_BIN")
                ?: error("TOKENRELAY_SERVER_BIN must point at target/release/tokenrelay-server")
            val dir = Files.createTempDirectory("tokenrelay-kotlin-").toFile()
            val common = listOf("--db", File(dir, "store.sqlite3").path, "--rate-limit-per-minute", "1000000", "--scripted-pace-ms", "0")
            val boot = ProcessBuilder(listOf(bin) + common + listOf("bootstrap", "--org-name", "kotlin"))
                .redirectErrorStream(false).start()
            val out = boot.inputStream.bufferedReader().readText()
            check(boot.waitFor() == 0) { "bootstrap failed: ${boot.errorStream.bufferedReader().readText()}" }
            val fields = out.split(Regex("\\s+")).filter { '=' in it }.associate { it.substringBefore('=') to it.substringAfter('=') }
            val pb = ProcessBuilder(listOf(bin) + common + listOf("--bind", "127.0.0.1:0", "--fault-injection") + RELAXED_LIMITS +
                (if (baseProtocol) listOf("--base-protocol") else emptyList()) + listOf("serve"))
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
            // The pipe closes when the server stops; that ends the thread.
            Thread {
                try {
                    stderr.useLines { lines -> lines.forEach { } }
                } catch (_: java.io.IOException) {
                }
            }.apply { isDaemon = true }.start()
            return ReferenceServer(
                process, dir, match.groupValues[1], match.groupValues[2],
                fields.getValue("org_id"), fields.getValue("org_api_key"),
            )
        }
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
