// A small test runner (the JVM here has no JUnit): each test is a named
// suspend function run under a timeout; the last line is the plain
// "N passed, N failed" summary and the exit code is non-zero on a failure.
package dev.tokenrelay.test

import kotlin.system.exitProcess
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout

class TestFailure(message: String) : AssertionError(message)

fun check(condition: Boolean, message: () -> String) {
    if (!condition) throw TestFailure(message())
}

fun <T> assertEq(actual: T, expected: T, what: String) {
    if (actual != expected) throw TestFailure("$what: expected <$expected>, got <$actual>")
}

/** Runs [block] and returns what it threw, failing if it threw nothing or the wrong type. */
suspend inline fun <reified E : Throwable> assertThrows(what: String, block: () -> Unit): E {
    try {
        block()
    } catch (e: Throwable) {
        if (e is E) return e
        throw TestFailure("$what: expected ${E::class.simpleName}, got $e")
    }
    throw TestFailure("$what: expected ${E::class.simpleName}, nothing was thrown")
}

class Test(val name: String, val body: suspend (ReferenceServer) -> Unit)

fun main(args: Array<String>) {
    val only = args.toSet()
    val tests = (scenarioTests() + clientTests() + flowTests() + textTests() + toolLoopTests() + cancelTests() + restartTests() + observabilityTests() + testingTests()).filter { only.isEmpty() || it.name in only }
    var passed = 0
    var failed = 0
    ReferenceServer.start().use { server ->
        for (test in tests) {
            val t0 = System.nanoTime()
            try {
                runBlocking { withTimeout(90_000) { test.body(server) } }
                passed++
                println("PASS %-55s %6d ms".format(test.name, (System.nanoTime() - t0) / 1_000_000))
            } catch (e: Throwable) {
                failed++
                println("FAIL ${test.name}: $e")
                e.printStackTrace(System.out)
            }
        }
    }
    println()
    println("$passed passed, $failed failed")
    exitProcess(if (failed == 0 && passed > 0) 0 else 1)
}
