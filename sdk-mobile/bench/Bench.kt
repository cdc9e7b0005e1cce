// One timed run of the Kotlin SDK on the JVM receiving N `on_token` frames
// from the core's loopback bench server, in one of two modes:
//   events: conn.events() collected, every Event.Token counted in Kotlin
//   ask:    conn.ask() returns the whole reply (accumulated in Rust)
// Prints one JSON line: seconds, frames/s, peak heap used, peak RSS.
// Driven by bench/run.sh, one JVM per run.
package dev.tokenrelay.bench

import dev.tokenrelay.Client
import kotlin.time.Duration.Companion.milliseconds
import dev.tokenrelay.ClientConfig
import dev.tokenrelay.Event
import dev.tokenrelay.ResponseStatus
import java.io.File
import java.lang.management.ManagementFactory
import java.lang.management.MemoryType
import kotlin.system.exitProcess
import kotlinx.coroutines.flow.takeWhile
import kotlinx.coroutines.runBlocking

fun main(args: Array<String>): Unit = runBlocking {
    val (mode, url, n) = Triple(args[0], args[1], args[2].toLong())
    val client = Client(ClientConfig(wsUrl = url, invocationTimeout = 600_000.milliseconds)) { "bench" }
    val conn = client.connect("bench")
    val t0 = System.nanoTime()
    var count = 0L
    when (mode) {
        "events" -> {
            conn.sendMessage("go")
            conn.events().takeWhile { it !is Event.ResponseComplete }.collect { if (it is Event.Token) count++ }
        }
        "ask" -> {
            val reply = conn.ask("go")
            check(reply.status == ResponseStatus.COMPLETE) { "status ${reply.status}" }
            // The loopback server's tokens are " the", " quick", " brown", " fox".
            count = reply.text.split(' ').size.toLong() - 1
        }
        else -> error("mode events|ask")
    }
    val secs = (System.nanoTime() - t0) / 1e9
    if (count != n) {
        System.err.println("$mode: $count tokens, expected $n")
        exitProcess(1)
    }
    val heapPeak = ManagementFactory.getMemoryPoolMXBeans()
        .filter { it.type == MemoryType.HEAP }
        .sumOf { it.peakUsage.used }
    val rssKib = File("/proc/self/status").readLines()
        .firstOrNull { it.startsWith("VmHWM:") }?.split(Regex("\\s+"))?.get(1)?.toLong() ?: 0
    println("{\"secs\": $secs, \"rate\": ${n / secs}, \"heap_peak_mib\": ${heapPeak / 1048576.0}, \"rss_kib\": $rssKib}")
    conn.close()
    client.close()
}
