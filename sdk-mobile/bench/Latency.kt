// Latency through the Kotlin SDK on the JVM, as a person watching a reply
// feels it (issue #11): the suite of the Rust bench
// (tests/e2e/benches/latency.rs) against the release reference server,
// started as the Kotlin test harness starts it (kotlin/src/test/.../
// Server.kt: fault injection on, relaxed limits, engine pace 0):
//   first token minus the engine's pace, [tokens=3 pace_ms=20|0];
//   |gap - 20 ms| at [tokens=50 pace_ms=20]; gaps of [tokens=5000];
//   the freeze (longest gap minus the 2 ms pace) of a [tokens=200 pace_ms=2]
//   reply cut after token 100 by each server fault, with a Kotlin token
//   provider answering at once or after 100 ms;
//   a silent drop (a proxy stops forwarding, nothing closes).
// Every reply must arrive whole, each token (`t0 `, `t1 `, ...) exactly once
// and in order: that fails the run (exit 1). Timings are printed (ms: p50
// p99 max n), never judged.
//
// Driven by bench/latency.sh (full) and sdk-mobile/test.sh (`--short`):
//   java ... dev.tokenrelay.bench.LatencyKt [--short]   (TOKENRELAY_SERVER_BIN)
package dev.tokenrelay.bench

import dev.tokenrelay.AdminClient
import kotlin.time.Duration.Companion.milliseconds
import dev.tokenrelay.Client
import dev.tokenrelay.ClientConfig
import dev.tokenrelay.Connection
import dev.tokenrelay.Event
import dev.tokenrelay.NewAgent
import dev.tokenrelay.ResponseStatus
import java.io.File
import java.io.InputStream
import java.io.OutputStream
import java.net.InetAddress
import java.net.InetSocketAddress
import java.net.ServerSocket
import java.net.Socket
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.nio.file.Files
import java.util.Collections
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicLong
import kotlin.system.exitProcess
import kotlinx.coroutines.Deferred
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withContext
import kotlinx.coroutines.withTimeout

/** Upper bound of one reply, so a bug fails the bench instead of hanging it. */
const val WAIT_MS = 30_000L

/** The idle timeout the silent-drop row runs with (the default is 45 s). */
const val SILENT_IDLE_MS = 2_000L

class BenchFailure(message: String) : AssertionError(message)

fun pct(values: List<Double>, p: Double): Double {
    if (values.isEmpty()) return Double.NaN
    val v = values.sorted()
    return v[minOf(Math.round((p / 100.0) * (v.size - 1)).toInt(), v.size - 1)]
}

fun row(name: String, values: List<Double>) {
    println("  %-52s %8.2f %8.2f %8.2f %6d".format(name, pct(values, 50.0), pct(values, 99.0), pct(values, 100.0), values.size))
}

fun ms(nanos: Long): Double = nanos / 1e6

/** The scripted engine's tokens for `[tokens=n]`: `t0 `, ..., `t{n-1}`. */
private val expectedTokens = HashMap<Int, List<String>>()
fun expected(n: Int): List<String> = expectedTokens.getOrPut(n) { List(n) { if (it < n - 1) "t$it " else "t$it" } }

/** The release server, as the Kotlin test harness starts it. */
class RelayServer private constructor(
    private val process: Process,
    private val dir: File,
    val httpUrl: String,
    val wsUrl: String,
    val orgId: String,
    val orgKey: String,
) : AutoCloseable {
    val admin = AdminClient(httpUrl, orgKey)
    private val http: HttpClient = HttpClient.newHttpClient()

    /** Cuts every socket of [contextId] (`drop`, `close_4001`, …); fails unless one was cut. */
    suspend fun fault(contextId: String, fault: String) = withContext(Dispatchers.IO) {
        val request = HttpRequest.newBuilder(URI.create("$httpUrl/debug/faults"))
            .header("Authorization", "Bearer $orgKey")
            .header("Content-Type", "application/json")
            .timeout(java.time.Duration.ofMillis(WAIT_MS))
            .POST(HttpRequest.BodyPublishers.ofString("{\"context_id\":\"$contextId\",\"fault\":\"$fault\"}"))
            .build()
        val response = http.send(request, HttpResponse.BodyHandlers.ofString())
        val sockets = Regex("\"sockets\"\\s*:\\s*(\\d+)").find(response.body())?.groupValues?.get(1)?.toInt() ?: 0
        if (response.statusCode() !in 200..299 || sockets < 1) {
            throw BenchFailure("fault $fault: HTTP ${response.statusCode()} ${response.body()}")
        }
    }

    suspend fun newContext(): String {
        val agent = admin.createAgent(NewAgent(agentName = "latency", prompt = "", agentDescription = "kotlin latency bench"))
        return admin.createContext(agent.agentId).contextId()
    }

    override fun close() {
        process.destroy()
        if (!process.waitFor(10, TimeUnit.SECONDS)) process.destroyForcibly()
        dir.deleteRecursively()
    }

    companion object {
        private val RELAXED_LIMITS = listOf(
            "--socket-frame-burst", "100000", "--socket-frames-per-sec", "100000",
            "--max-pending-invocations", "10000", "--max-sockets-per-ip", "100000",
        )

        fun start(): RelayServer {
            val bin = System.getenv("TOKENRELAY_SERVER_BIN")
                ?: throw BenchFailure("TOKENRELAY_SERVER_BIN must point at target/release/tokenrelay-server")
            val dir = Files.createTempDirectory("tokenrelay-kotlin-latency-").toFile()
            val common = listOf("--db", File(dir, "store.sqlite3").path, "--rate-limit-per-minute", "1000000", "--scripted-pace-ms", "0")
            val boot = ProcessBuilder(listOf(bin) + common + listOf("bootstrap", "--org-name", "kotlin-latency"))
                .redirectError(ProcessBuilder.Redirect.DISCARD).start()
            val out = boot.inputStream.bufferedReader().readText()
            if (!boot.waitFor(WAIT_MS, TimeUnit.MILLISECONDS) || boot.exitValue() != 0) throw BenchFailure("bootstrap failed")
            val fields = out.split(Regex("\\s+")).filter { '=' in it }.associate { it.substringBefore('=') to it.substringAfter('=') }
            val pb = ProcessBuilder(listOf(bin) + common + listOf("--bind", "127.0.0.1:0", "--fault-injection") + RELAXED_LIMITS + listOf("serve"))
            pb.environment()["TOKENRELAY_LOG"] = "info"
            pb.environment()["NO_COLOR"] = "1"
            pb.redirectOutput(ProcessBuilder.Redirect.DISCARD)
            val process = pb.start()
            val stderr = process.errorStream.bufferedReader()
            val ready = Regex("ready.*http=(\\S+).*ws=(\\S+)")
            var match: MatchResult? = null
            // Bounded: the server prints its ready line at once or exits (EOF).
            val deadline = System.nanoTime() + WAIT_MS * 1_000_000
            while (match == null && System.nanoTime() < deadline) {
                val line = stderr.readLine() ?: break
                match = ready.find(line.replace(Regex("\u001b\\[[0-9;]*m"), ""))
            }
            if (match == null) {
                process.destroyForcibly()
                throw BenchFailure("the server did not start")
            }
            Thread {
                try {
                    stderr.useLines { lines -> lines.forEach { } }
                } catch (_: java.io.IOException) {
                }
            }.apply { isDaemon = true }.start()
            return RelayServer(process, dir, match.groupValues[1], match.groupValues[2], fields.getValue("org_id"), fields.getValue("org_api_key"))
        }
    }
}

/**
 * What an app's backend does: a fresh client key scoped to the context from
 * the server's REST API on every call, after [delayMs] (the backend's own
 * time). The time of each call is kept in [calls].
 */
class Provider(private val server: RelayServer, private val delayMs: Long) {
    val calls: MutableList<Double> = Collections.synchronizedList(mutableListOf())

    suspend fun token(contextId: String): String {
        val t0 = System.nanoTime()
        if (delayMs > 0) delay(delayMs)
        val key = server.admin.generateClientKey(server.orgId, contextId, null).token()
        calls.add(ms(System.nanoTime() - t0))
        return key
    }
}

/**
 * Streams one reply of [n] tokens; returns when it was asked and when each
 * token arrived (nanoTime), after checking every token arrived once, in
 * order. [onToken] runs as token `i` (1-based) arrives.
 */
suspend fun timedReply(conn: Connection, text: String, n: Int, waitMs: Long = WAIT_MS, onToken: (Int) -> Unit = {}): Pair<Long, LongArray> {
    val want = expected(n)
    val arrivals = LongArray(n)
    var count = 0
    var mine: String? = null
    val asked = System.nanoTime()
    val request = conn.sendMessage(text)
    withTimeout(waitMs) {
        conn.events().first { e ->
            when (e) {
                is Event.ResponseStarted -> if (e.requestId?.toLong() == request) mine = e.responseId
                is Event.Token -> if (e.responseId == mine) {
                    val now = System.nanoTime()
                    if (count >= n || e.token != want[count]) {
                        throw BenchFailure("$text: token #$count is '${e.token}', expected '${want.getOrElse(count) { "the end" }}' (every token exactly once, in order)")
                    }
                    arrivals[count++] = now
                    onToken(count)
                }
                is Event.ResponseComplete -> if (e.response.requestId?.toLong() == request) {
                    val r = e.response
                    if (count != n) throw BenchFailure("$text: $count tokens, expected $n")
                    if (r.status != ResponseStatus.COMPLETE || r.text != want.joinToString("")) throw BenchFailure("$text: the reply ended ${r.status}")
                    return@first true
                }
                else -> {}
            }
            false
        }
    }
    return asked to arrivals
}

fun gaps(arrivals: LongArray): List<Double> = (1 until arrivals.size).map { ms(arrivals[it] - arrivals[it - 1]) }

/**
 * A TCP proxy between the client and the server that can make the
 * connections it carries go silent: bytes are read and forgotten in both
 * directions and nothing is closed, as a network dropping a flow does.
 */
class Proxy(private val upstream: InetSocketAddress) : AutoCloseable {
    private val listener = ServerSocket(0, 50, InetAddress.getLoopbackAddress())
    private val next = AtomicLong(0)
    private val silentBelow = AtomicLong(0)
    private val sockets = Collections.synchronizedList(mutableListOf<Socket>())
    val port: Int get() = listener.localPort

    init {
        Thread {
            while (true) {
                val client = try { listener.accept() } catch (_: java.io.IOException) { return@Thread }
                val id = next.getAndIncrement()
                val server = try { Socket(upstream.address, upstream.port) } catch (_: java.io.IOException) { client.close(); continue }
                client.tcpNoDelay = true
                server.tcpNoDelay = true
                sockets += listOf(client, server)
                pipe(client.getInputStream(), server.getOutputStream(), server, id)
                pipe(server.getInputStream(), client.getOutputStream(), client, id)
            }
        }.apply { isDaemon = true }.start()
    }

    /** Every connection open now goes silent; new ones pass. */
    fun blackHole() = silentBelow.set(next.get())

    private fun pipe(from: InputStream, to: OutputStream, toSocket: Socket, id: Long) {
        Thread {
            val buf = ByteArray(16 * 1024)
            try {
                while (true) {
                    val n = from.read(buf)
                    val silent = id < silentBelow.get()
                    if (n < 0) {
                        // A black hole does not pass a close on either.
                        if (!silent) toSocket.shutdownOutput()
                        return@Thread
                    }
                    if (!silent) {
                        to.write(buf, 0, n)
                        to.flush()
                    }
                }
            } catch (_: java.io.IOException) {
            }
        }.apply { isDaemon = true }.start()
    }

    override fun close() {
        listener.close()
        synchronized(sockets) { sockets.forEach { it.close() } }
    }
}

suspend fun measure(server: RelayServer, rounds: Int, short: Boolean) = coroutineScope {
    val ctx = server.newContext()
    // The reconnect policy the Kotlin API exposes: no backoff envelope, so
    // quick successive cuts are not spaced by the flapping protection (the
    // Rust bench sets `stable_after: 0` instead, which Kotlin does not expose).
    fun config(url: String) = ClientConfig(wsUrl = url, reconnectMinDelay = 0.milliseconds, reconnectMaxDelay = 0.milliseconds)

    // Time to first token minus the engine's own pace; evenness.
    Client(config(server.wsUrl), Provider(server, 0)::token).use { client ->
        val conn = client.connect(ctx)
        try {
            for (pace in listOf(20, 0)) {
                val added = (1..rounds).map {
                    val (asked, arrivals) = timedReply(conn, "[tokens=3 pace_ms=$pace]", 3)
                    ms(arrivals[0] - asked) - pace
                }
                row("first token - pace (pace $pace ms)", added)
            }
            val jitter = (1..maxOf(rounds / 10, 2)).flatMap {
                gaps(timedReply(conn, "[tokens=50 pace_ms=20]", 50).second).map { g -> Math.abs(g - 20.0) }
            }
            row("|gap - 20 ms| (pace 20 ms)", jitter)
            row("gap at full speed (5,000 tokens)", gaps(timedReply(conn, "[tokens=5000]", 5000).second))
        } finally {
            conn.close()
        }
    }

    // The freeze when the socket dies after token 100 of 200 (pace 2 ms).
    println("  (reconnect policy: reconnectMinDelay = reconnectMaxDelay = 0, no backoff between cuts; one uncounted warm-up cut first)")
    suspend fun freeze(conn: Connection, context: String, fault: String): Double = coroutineScope {
        var cut: Deferred<Unit>? = null
        val (_, arrivals) = timedReply(conn, "[tokens=200 pace_ms=2]", 200) { i ->
            // Off the reading path: the reader keeps timing.
            if (i == 100) cut = async(Dispatchers.IO) { server.fault(context, fault) }
        }
        // The cut reached the socket (or this throws).
        withTimeout(WAIT_MS) { cut!!.await() }
        gaps(arrivals).max() - 2.0
    }
    val cuts = if (short) 3 else rounds / 4
    // With a 100 ms provider, refresh-ahead off (the key fetched on
    // reconnect) and on (the default: the next key fetched while connected).
    // One connection per variant and fault, each on a context of its own (a
    // fault cuts every socket of its context); they take turns, cut after
    // cut, so that a change in the machine's load weighs on every row alike.
    val faults = listOf("close_1001", "close_1011", "close_4001", "drop")
    val variants = listOf(Triple(0L, true, ""), Triple(100L, false, ", on demand"), Triple(100L, true, ", ahead")).map { (delayMs, refresh, label) ->
        val provider = Provider(server, delayMs)
        Triple("provider $delayMs ms$label", provider, Client(config(server.wsUrl).copy(refreshAhead = refresh), provider::token))
    }
    val contexts = mutableMapOf<Pair<Int, String>, String>()
    val conns = mutableMapOf<Pair<Int, String>, Connection>()
    try {
        val warmUp = variants[0].third.connect(ctx)
        try {
            freeze(warmUp, ctx, "drop")
        } finally {
            warmUp.close()
        }
        variants[0].second.calls.clear()
        val freezes = mutableMapOf<Pair<Int, String>, MutableList<Double>>()
        repeat(cuts) {
            for ((v, variant) in variants.withIndex()) {
                for (fault in faults) {
                    val context = contexts.getOrPut(v to fault) { server.newContext() }
                    val conn = conns.getOrPut(v to fault) { variant.third.connect(context) }
                    freezes.getOrPut(v to fault) { mutableListOf() }.add(freeze(conn, context, fault))
                }
            }
        }
        for ((v, variant) in variants.withIndex()) {
            for (fault in faults) row("freeze, $fault, ${variant.first}", freezes.getValue(v to fault))
            // The provider's own time: what a reconnect waits for when no key
            // was fetched ahead (a Kotlin suspend call minting a key over REST).
            if (v == 0) row("token provider call (provider 0 ms)", variant.second.calls.toList())
        }
    } finally {
        conns.values.forEach { it.close() }
        variants.forEach { it.third.close() }
    }

    // A silent drop: the network stops carrying the flow and nothing
    // closes. Only the client's keepalive can tell; as in the Rust bench,
    // ping after 500 ms of quiet and dead after 2 s of silence (the
    // defaults are 15 s and 45 s: the freeze is the idle timeout plus a
    // reconnect, whatever its value).
    val name = "freeze, silent drop (idle timeout 2 s)"
    val upstream = URI.create(server.wsUrl)
    Proxy(InetSocketAddress(upstream.host, upstream.port)).use { proxy ->
        val keepalive = config("ws://127.0.0.1:${proxy.port}/ws").copy(pingInterval = 500.milliseconds, idleTimeout = SILENT_IDLE_MS.milliseconds)
        Client(keepalive, Provider(server, 0)::token).use { client ->
            val conn = client.connect(ctx)
            try {
                val freezes = (1..maxOf(rounds / 20, 2)).map {
                    val (_, arrivals) = timedReply(conn, "[tokens=200 pace_ms=2]", 200, 2 * SILENT_IDLE_MS + WAIT_MS) { i ->
                        if (i == 100) proxy.blackHole()
                    }
                    gaps(arrivals).max()
                }
                row(name, freezes)
            } finally {
                conn.close()
            }
        }
    }
}

fun main(args: Array<String>) {
    val short = "--short" in args
    val rounds = if (short) 20 else 200
    println("latency, Kotlin SDK on the JVM (${System.getProperty("java.vm.name")} ${System.getProperty("java.version")}), loopback, $rounds rounds${if (short) " (short)" else ""}: ms p50 p99 max n")
    try {
        RelayServer.start().use { server ->
            runBlocking { withTimeout(60 * 60_000L) { measure(server, rounds, short) } }
        }
    } catch (e: Throwable) {
        System.out.flush()
        System.err.println("latency bench failed: $e")
        e.printStackTrace()
        exitProcess(1)
    }
    exitProcess(0)
}
