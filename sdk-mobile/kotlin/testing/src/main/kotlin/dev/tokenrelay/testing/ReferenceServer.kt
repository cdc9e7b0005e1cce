// The tokenrelay reference server in a JVM test suite: the artifact
// `dev.tokenrelay:tokenrelay-jvm-testing` (kotlin/jvm-artifact.sh), pure
// JVM (no native library, no coroutines), usable from Kotlin and Java
// (`ReferenceServers.startReferenceServer(…)`).
@file:JvmName("ReferenceServers")

package dev.tokenrelay.testing

import java.io.File
import java.io.IOException
import java.net.URI
import java.nio.file.Files
import java.time.Duration
import java.util.Collections
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit

/** No `tokenrelay-server` binary where one was asked for or looked for; the message names every place tried. */
class ServerNotFoundException(message: String) : RuntimeException(message)

/**
 * One reference server process and the org bootstrapped in its store.
 *
 * [startReferenceServer] bootstraps an org in a fresh SQLite file, serves it on
 * `127.0.0.1:0` and returns once the server's ready line is logged (the only
 * place the bound port is told):
 *
 * ```kotlin
 * startReferenceServer(args = listOf("--scripted-pace-ms", "0")).use { server ->
 *     val admin = AdminClient(server.httpUrl, server.orgKey)
 *     Client(server.wsUrl) { contextId -> admin.generateClientKey(server.orgId, contextId, null).token() }
 * }
 * ```
 *
 * [stop] and [start] again (or [restart]) serve the same store on the same
 * address, as a deployment's restart would, for reconnect tests; [close]
 * stops it for good and removes the store it created. A suite adds helpers
 * of its own by wrapping it.
 */
class ReferenceServer internal constructor(
    /** The executable run. */
    val binary: File,
    private val args: List<String>,
    private val orgName: String,
    private val credits: Long?,
    db: String?,
    private val bind: String,
    private val env: Map<String, String>,
    private val startupTimeout: Duration,
) : AutoCloseable {
    private val tmp: File? = if (db == null) Files.createTempDirectory("tokenrelay-test-").toFile() else null

    /** The store: a SQLite path or a `postgres://` URL, kept across restarts. */
    val db: String = db ?: File(tmp, "store.sqlite3").path

    private val lines: MutableList<String> = Collections.synchronizedList(mutableListOf())
    private var process: Process? = null
    private var reader: Thread? = null
    private var urls: Pair<String, String>? = null
    private var org: Pair<String, String>? = null

    /** REST base URL, `http://127.0.0.1:PORT`. */
    val httpUrl: String get() = started(urls).first

    /** WebSocket URL, `ws://127.0.0.1:PORT/ws`. */
    val wsUrl: String get() = started(urls).second

    /** The bootstrapped org's id. */
    val orgId: String get() = started(org).first

    /** The org's API key: server-side only; mint client keys with it. */
    val orgKey: String get() = started(org).second

    /** A copy of every line the server has logged (stderr), across restarts; never a credential. */
    val log: List<String> get() = synchronized(lines) { lines.toList() }

    /** Whether the server process is running. */
    val isRunning: Boolean get() = process?.isAlive == true

    private fun <T> started(value: T?): T = value ?: throw IllegalStateException("the reference server has not been started")

    private fun command(vararg tail: String): ProcessBuilder {
        val pb = ProcessBuilder(listOf(binary.path, "--db", db) + tail.toList())
        // The ready line is parsed as text at level info: a developer's own
        // TOKENRELAY_LOG / TOKENRELAY_LOG_JSON must not hide it.
        pb.environment().remove("TOKENRELAY_LOG_JSON")
        pb.environment()["TOKENRELAY_LOG"] = "info"
        pb.environment()["NO_COLOR"] = "1"
        pb.environment().putAll(env)
        return pb
    }

    /**
     * Starts the server and returns once it accepts connections: the first
     * time it bootstraps the org; later it serves the same store on the
     * address the first start bound, so URLs, keys and data stay valid.
     *
     * @throws IllegalStateException it is already running, bootstrap failed,
     *   or the server exited or logged no ready line within the startup
     *   timeout (the message holds its log).
     */
    @Synchronized
    fun start(): ReferenceServer {
        check(!isRunning) { "the reference server is already running" }
        if (org == null) bootstrap()
        serve(urls?.let { URI.create(it.first).authority } ?: bind)
        return this
    }

    private fun bootstrap() {
        val tail = args + listOf("bootstrap", "--org-name", orgName) +
            (credits?.let { listOf("--credits", it.toString()) } ?: emptyList())
        val boot = command(*tail.toTypedArray()).redirectInput(ProcessBuilder.Redirect.PIPE).start()
        boot.outputStream.close()
        // stderr on its own thread: a full pipe must not block the process
        // while stdout is read.
        var stderr = ""
        val errReader = Thread { stderr = boot.errorStream.bufferedReader().readText() }.apply { start() }
        val out = boot.inputStream.bufferedReader().readText()
        val code = boot.waitFor()
        errReader.join()
        // stderr only in the error: stdout would hold the key had it got that far.
        check(code == 0) { "${binary.name} bootstrap exited with $code:\n$stderr" }
        val fields = out.lines().filter { '=' in it }.associate { it.substringBefore('=') to it.substringAfter('=').trim() }
        org = (fields["org_id"] ?: error("bootstrap printed no org_id")) to
            (fields["org_api_key"] ?: error("bootstrap printed no org_api_key"))
    }

    private fun serve(bindTo: String) {
        val pb = command(*(listOf("--bind", bindTo) + args + listOf("serve")).toTypedArray())
        pb.redirectOutput(ProcessBuilder.Redirect.DISCARD)
        pb.redirectInput(ProcessBuilder.Redirect.PIPE)
        val proc = pb.start()
        proc.outputStream.close()
        val first = lines.size
        val ready = CountDownLatch(1)
        var found: Pair<String, String>? = null
        // One reader for the process's whole life: it finds the ready line,
        // then keeps draining so the server never blocks on a full pipe; EOF
        // (the process died) also wakes the waiter.
        val thread = Thread({
            try {
                proc.errorStream.bufferedReader().forEachLine { raw ->
                    val line = raw.replace(ANSI, "")
                    lines.add(line)
                    if (found == null) {
                        READY.find(line)?.let {
                            found = it.groupValues[1] to it.groupValues[2]
                            ready.countDown()
                        }
                    }
                }
            } catch (_: IOException) {
            } finally {
                ready.countDown()
            }
        }, "tokenrelay-server-log").apply { isDaemon = true; start() }
        process = proc
        reader = thread
        val inTime = ready.await(startupTimeout.toMillis(), TimeUnit.MILLISECONDS)
        val bound = found
        if (bound == null) {
            // EOF before a ready line: the server is exiting; its status says
            // why better than a timeout would.
            if (inTime) proc.waitFor(5, TimeUnit.SECONDS)
            val why = if (!proc.isAlive) "exited with ${proc.exitValue()}" else "logged no ready line within $startupTimeout"
            stop(graceful = false)
            throw IllegalStateException("${binary.name} $why; its log:\n" + log.drop(first).joinToString("\n"))
        }
        val before = urls
        if (before != null && bound != before) {
            stop(graceful = false)
            throw IllegalStateException("the restarted server listens on ${bound.first}, not ${before.first}")
        }
        urls = bound
    }

    /**
     * Stops the server and waits until it has exited. [graceful] sends
     * SIGTERM: the server drains (sockets closed with 1001, running replies
     * finish within `--drain-timeout-secs`, default 30) and is killed after
     * [timeout]; otherwise SIGKILL at once (as a crash: no close frames).
     * Stopping a stopped server does nothing.
     */
    @Synchronized
    @JvmOverloads
    fun stop(graceful: Boolean = true, timeout: Duration = Duration.ofSeconds(30)) {
        val proc = process ?: return
        if (graceful) {
            proc.destroy()
            if (!proc.waitFor(timeout.toMillis(), TimeUnit.MILLISECONDS)) proc.destroyForcibly()
        } else {
            proc.destroyForcibly()
        }
        proc.waitFor()
        // The reader ends at EOF once the process is gone: the log is whole.
        reader?.join(5_000)
        process = null
        reader = null
    }

    /** [stop] then [start]: the same address, store, org and keys. */
    @JvmOverloads
    fun restart(graceful: Boolean = true): ReferenceServer {
        stop(graceful)
        return start()
    }

    /** Stops the server (SIGTERM, killed after 10 s) and removes the store it created; it cannot start again. */
    override fun close() {
        try {
            stop(graceful = true, timeout = Duration.ofSeconds(10))
        } finally {
            tmp?.deleteRecursively()
        }
    }

    /** Never the org key: this ends up in test reports. */
    override fun toString(): String =
        "ReferenceServer(${if (isRunning) "running" else "stopped"}, httpUrl=${urls?.first}, orgId=${org?.first})"

    companion object {
        /** The executable's name, as cargo and the `tokenrelay-server` wheel install it. */
        const val BINARY_NAME: String = "tokenrelay-server"

        /** The environment variable naming the binary (wins over `PATH`). */
        const val ENV_VAR: String = "TOKENRELAY_SERVER_BIN"

        // `… ready http=http://127.0.0.1:PORT ws=ws://127.0.0.1:PORT/ws`
        // (reference-server/src/main.rs).
        private val READY = Regex("\\bready\\b.*\\bhttp=(\\S+).*\\bws=(\\S+)")
        private val ANSI = Regex("\u001b\\[[0-9;]*m")
    }
}

/**
 * The `tokenrelay-server` executable: [path] when given, else
 * `$TOKENRELAY_SERVER_BIN`, else the first on `PATH` ([env] stands for
 * the process environment). A given path or variable that is not an
 * executable file is an error, never a reason to look further.
 *
 * @throws ServerNotFoundException nothing found; the message lists the places.
 */
@JvmOverloads
fun findServerBinary(path: String? = null, env: Map<String, String> = System.getenv()): File {
    if (path != null) return executable(File(path), "the path given")
    env[ReferenceServer.ENV_VAR]?.takeIf { it.isNotEmpty() }?.let { return executable(File(it), ReferenceServer.ENV_VAR) }
    for (dir in (env["PATH"] ?: "").split(File.pathSeparator)) {
        if (dir.isEmpty()) continue
        val candidate = File(dir, ReferenceServer.BINARY_NAME)
        if (candidate.isFile && candidate.canExecute()) return candidate
    }
    throw ServerNotFoundException(
        "no ${ReferenceServer.BINARY_NAME} binary found: no path given, ${ReferenceServer.ENV_VAR} is not set and none is on PATH. " +
            "Build it with `cargo build --release -p tokenrelay-server` and set ${ReferenceServer.ENV_VAR} to " +
            "target/release/${ReferenceServer.BINARY_NAME}, or `pip install tokenrelay-server` (it puts the binary on a venv's PATH).",
    )
}

private fun executable(file: File, source: String): File {
    if (!(file.isFile && file.canExecute())) throw ServerNotFoundException("$source names $file, which is not an executable file")
    return file
}

/**
 * Starts a reference server with a freshly bootstrapped org; close it
 * (`use { }`) to stop it and remove its store.
 *
 * @param binary the executable; null looks it up with [findServerBinary].
 * @param args more server flags (`--scripted-pace-ms 0`,
 *   `--fault-injection`, limits, `--base-protocol`; `tokenrelay-server
 *   --help`); global flags, given to `bootstrap` and `serve` alike.
 * @param orgName the bootstrapped org's name.
 * @param credits the org's credits; null: unlimited.
 * @param db the store (a SQLite path or a `postgres://` URL); null: a
 *   SQLite file in a fresh temporary directory, removed by [ReferenceServer.close].
 * @param bind the address; port 0 picks a free one.
 * @param env environment variables for the server, over the JVM's.
 * @param startupTimeout how long to wait for the ready line.
 */
@JvmOverloads
fun startReferenceServer(
    binary: String? = null,
    args: List<String> = emptyList(),
    orgName: String = "test",
    credits: Long? = null,
    db: String? = null,
    bind: String = "127.0.0.1:0",
    env: Map<String, String> = emptyMap(),
    startupTimeout: Duration = Duration.ofSeconds(30),
): ReferenceServer {
    val server = ReferenceServer(findServerBinary(binary), args.toList(), orgName, credits, db, bind, env.toMap(), startupTimeout)
    try {
        server.start()
    } catch (e: Throwable) {
        server.close()
        throw e
    }
    return server
}
