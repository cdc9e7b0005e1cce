// `dev.tokenrelay.testing`, the helper the SDK ships for its users' JVM
// test suites (the same checks as sdk-python/tests/test_testing.py and
// sdk-wasm/tests/testing.test.js): the binary found in the documented
// order (and an error naming every place when it is not), a restart that
// keeps the address and the data, a failed start that says why, the org key
// never in toString.
package dev.tokenrelay.test

import dev.tokenrelay.AdminClient
import dev.tokenrelay.NewAgent
import dev.tokenrelay.testing.ReferenceServer as Relay
import dev.tokenrelay.testing.ServerNotFoundException
import dev.tokenrelay.testing.findServerBinary
import dev.tokenrelay.testing.startReferenceServer
import java.io.File
import java.net.URI
import java.nio.file.Files
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.withContext

private fun fakeBinary(dir: File, sub: String): File {
    val file = File(File(dir, sub).apply { mkdirs() }, Relay.BINARY_NAME)
    file.writeText("#!/bin/sh\n")
    file.setExecutable(true)
    return file
}

private suspend fun lookupOrder() {
    val dir = Files.createTempDirectory("tokenrelay-find-").toFile()
    try {
        val given = fakeBinary(dir, "given")
        val fromEnv = fakeBinary(dir, "env")
        val onPath = fakeBinary(dir, "path")
        val env = mapOf(Relay.ENV_VAR to fromEnv.path, "PATH" to File(dir, "path").path)
        assertEq(findServerBinary(given.path, env), given, "the path given wins")
        assertEq(findServerBinary(null, env), fromEnv, "then TOKENRELAY_SERVER_BIN")
        assertEq(findServerBinary(null, env - Relay.ENV_VAR), onPath, "then PATH")
        onPath.delete()
        val none = assertThrows<ServerNotFoundException>("nothing found") { findServerBinary(null, env - Relay.ENV_VAR) }
        for (place in listOf("no path given", Relay.ENV_VAR, "PATH", "cargo build")) {
            check(place in none.message!!) { "the error names $place: ${none.message}" }
        }
        // A wrong explicit choice fails; it never falls back to another server.
        val missing = File(dir, "missing").path
        assertThrows<ServerNotFoundException>("a missing path given") { findServerBinary(missing, env) }
        val badEnv = assertThrows<ServerNotFoundException>("a missing TOKENRELAY_SERVER_BIN") {
            findServerBinary(null, env + (Relay.ENV_VAR to missing))
        }
        check(Relay.ENV_VAR in badEnv.message!!) { "the error names the variable: ${badEnv.message}" }
    } finally {
        dir.deleteRecursively()
    }
}

private suspend fun restartKeepsData(graceful: Boolean) = withContext(Dispatchers.IO) {
    startReferenceServer(args = listOf("--drain-timeout-secs", "1")).use { relay ->
        val urls = relay.httpUrl to relay.wsUrl
        val admin = AdminClient(relay.httpUrl, relay.orgKey)
        val agent = admin.createAgent(NewAgent(agentName = "kept", prompt = "", agentDescription = "kotlin", agentSpeaksFirst = false))
        relay.stop(graceful)
        check(!relay.isRunning) { "stopped" }
        relay.stop() // stopping a stopped server does nothing
        relay.start()
        assertEq(relay.httpUrl to relay.wsUrl, urls, "the address after a restart")
        assertEq(admin.getAgent(agent.agentId).agentId, agent.agentId, "the agent after a restart")
        assertEq(relay.log.count { Regex("\\bready\\b").containsMatchIn(it) }, 2, "ready lines in the one log")
        assertThrows<IllegalStateException>("start while running") { relay.start() }
        check(relay.orgKey !in relay.toString()) { "the org key in toString" }
        check(relay.log.none { relay.orgKey in it }) { "the org key in the log" }
        val db = File(relay.db)
        check(db.exists()) { "the store exists while open" }
        relay.close()
        check(!db.exists()) { "close() removes the store it created" }
    }
}

private suspend fun failedStartSaysWhy() = withContext(Dispatchers.IO) {
    val bad = assertThrows<IllegalStateException>("an unknown flag") { startReferenceServer(args = listOf("--no-such-flag")) }
    check("bootstrap exited" in bad.message!! && "--no-such-flag" in bad.message!!) { "the error: ${bad.message}" }
    startReferenceServer().use { first ->
        // serve fails after a good bootstrap: the address is taken.
        val taken = assertThrows<IllegalStateException>("a taken address") {
            startReferenceServer(bind = URI.create(first.httpUrl).authority)
        }
        check("exited with" in taken.message!!) { "the error: ${taken.message}" }
    }
}

fun testingTests(): List<Test> = listOf(
    Test("testing helper: the binary's lookup order (path, TOKENRELAY_SERVER_BIN, PATH) and the error naming each") { _ -> lookupOrder() },
    Test("testing helper: a graceful stop/start keeps the address and the data") { _ -> restartKeepsData(graceful = true) },
    Test("testing helper: a kill/start keeps the address and the data") { _ -> restartKeepsData(graceful = false) },
    Test("testing helper: a server that cannot start says why") { _ -> failedStartSaysWhy() },
)
