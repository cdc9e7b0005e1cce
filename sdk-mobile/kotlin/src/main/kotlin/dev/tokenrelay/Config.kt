// `ClientConfig` as Kotlin code expects it: durations are
// `kotlin.time.Duration`s (`30.seconds`), counts are `Int`s. The generated
// uniffi record underneath (`NativeClientConfig`, renamed in
// sdk-mobile/uniffi.toml) keeps the Rust side's milliseconds and unsigned
// integers; `toNative()` converts, refusing what has no meaning there.
package dev.tokenrelay

import kotlin.time.Duration
import kotlin.time.Duration.Companion.milliseconds

/**
 * How a [Client] connects. Only [wsUrl] is required; every `null` keeps
 * the core's default.
 *
 * ```kotlin
 * val config = ClientConfig(
 *     wsUrl = "wss://relay.example.com/ws",
 *     connectTimeout = 10.seconds,
 *     maxQueuedAge = 2.minutes,
 * )
 * ```
 *
 * Durations are rounded up to whole milliseconds (a positive duration
 * never becomes 0). A negative or infinite duration, or a negative count,
 * throws [IllegalArgumentException] when the [Client] is built.
 */
data class ClientConfig(
    /** The WebSocket endpoint, `wss://…/ws` (or `ws://` for local tests). */
    val wsUrl: String,
    /** The app's publishable client key (`pk_…`), sent on every connect. */
    val clientKey: String? = null,
    /** Extra headers for the WebSocket upgrade request. */
    val headers: Map<String, String>? = null,
    /** How long `connect` waits for the first attachment (default 30 s). */
    val connectTimeout: Duration? = null,
    /** Timeout of attaching to the context and of `stop` (default 15 s). */
    val requestTimeout: Duration? = null,
    /** Inactivity timeout of a reply (default 120 s). */
    val invocationTimeout: Duration? = null,
    /** First reconnect delay envelope (default 500 ms; full jitter). */
    val reconnectMinDelay: Duration? = null,
    /** Cap of the reconnect delay (default 20 s). */
    val reconnectMaxDelay: Duration? = null,
    /** Give up (state `FAILED`) after this many failed attempts in a row (default: never). */
    val maxReconnectAttempts: Int? = null,
    /**
     * Events kept on the native side while no collector reads
     * `Connection.events()` (default 65,536; the oldest are dropped beyond).
     */
    val eventCapacity: Int? = null,
    /**
     * Refresh ahead (default true): once connected with a JWT client key,
     * fetch the next connection's key in the background, so a reconnect
     * does not wait for the token provider. False calls the provider only
     * when a socket is needed.
     */
    val refreshAhead: Boolean? = null,
    /** Ping the server after this much quiet (default 15 s; [Duration.ZERO] turns pings off). */
    val pingInterval: Duration? = null,
    /**
     * Count the socket dead after this much silence and reconnect (default
     * 45 s; [Duration.ZERO] turns it off).
     */
    val idleTimeout: Duration? = null,
    /**
     * How many messages may wait for a connection while disconnected (sent
     * in order once attached; default 256). One more throws
     * [TokenRelayException.QueueFull] at once.
     */
    val maxQueued: Int? = null,
    /**
     * How long a message may wait for a connection (default 5 minutes;
     * [Duration.ZERO] for no limit). Past it, it fails unsent with
     * [TokenRelayException.QueueExpired].
     */
    val maxQueuedAge: Duration? = null,
    /**
     * Receives the core's log records (attachments, drops, resumes with
     * their counts, the close with the connection's stats; never a key) at
     * [logLevel] and above while this client lives: forward them to
     * Logcat, `os_log` or the app's logger.
     */
    val logger: Logger? = null,
    /** The most detailed records [logger] receives (default [LogLevel.INFO]). */
    val logLevel: LogLevel? = null,
    /**
     * A CA certificate (PEM text) trusted for `wss://` on top of the
     * platform's roots, for a relay whose certificate a private CA issued.
     * An invalid PEM throws [TokenRelayException.Config] when the [Client]
     * is built.
     */
    val rootCertificatePem: String? = null,
    /**
     * Allow `ws://` to a host that is not loopback (default false: such a
     * URL throws [TokenRelayException.Config]; credentials would cross the
     * network unencrypted).
     */
    val allowInsecure: Boolean = false,
    /**
     * An `http://[user:pass@]host:port` proxy for every socket (a `CONNECT`
     * tunnel). By default `HTTPS_PROXY`/`ALL_PROXY` and `NO_PROXY` are
     * followed; on Android, pass the system's proxy here if the app needs one.
     */
    val proxy: String? = null,
    /** Connect directly, ignoring the proxy environment variables. */
    val noProxy: Boolean = false,
) {
    /** The generated record the native client takes. */
    internal fun toNative(): NativeClientConfig = NativeClientConfig(
        wsUrl = wsUrl,
        clientKey = clientKey,
        headers = headers,
        connectTimeoutMs = connectTimeout.millis("connectTimeout"),
        requestTimeoutMs = requestTimeout.millis("requestTimeout"),
        invocationTimeoutMs = invocationTimeout.millis("invocationTimeout"),
        reconnectMinDelayMs = reconnectMinDelay.millis("reconnectMinDelay"),
        reconnectMaxDelayMs = reconnectMaxDelay.millis("reconnectMaxDelay"),
        maxReconnectAttempts = maxReconnectAttempts.count("maxReconnectAttempts"),
        eventCapacity = eventCapacity.count("eventCapacity"),
        refreshAhead = refreshAhead,
        pingIntervalMs = pingInterval.millis("pingInterval"),
        idleTimeoutMs = idleTimeout.millis("idleTimeout"),
        maxQueued = maxQueued.count("maxQueued"),
        maxQueuedAgeMs = maxQueuedAge.millis("maxQueuedAge"),
        logger = logger,
        logLevel = logLevel,
        rootCertificatePem = rootCertificatePem,
        allowInsecure = allowInsecure,
        proxy = proxy,
        noProxy = noProxy,
    )
}

/** Whole milliseconds, rounded up. */
private fun Duration?.millis(name: String): ULong? {
    if (this == null) return null
    require(!isNegative()) { "$name must not be negative: $this" }
    // The native side adds it to a clock: a finite value, please (null is the default).
    require(isFinite()) { "$name must be finite: $this" }
    val whole = inWholeMilliseconds
    return (if (this > whole.milliseconds) whole + 1 else whole).toULong()
}

private fun Int?.count(name: String): UInt? {
    if (this == null) return null
    require(this >= 0) { "$name must not be negative: $this" }
    return toUInt()
}
