// A tiny WebSocket server speaking just enough of the protocol to send
// frames the reference server never would: `on_token` frames whose raw JSON
// the test writes itself (a token boundary inside a grapheme, a surrogate
// pair escape split across two frames). The reference server's engine
// splits at whitespace and serde_json writes non-ASCII raw, so neither can
// come from it. The JVM has no WebSocket server; this is RFC 6455 by hand
// (the same server as sdk-python/tests/rawws.py).
package dev.tokenrelay.test

import java.io.DataInputStream
import java.io.IOException
import java.io.OutputStream
import java.net.InetAddress
import java.net.ServerSocket
import java.net.Socket
import java.security.MessageDigest
import java.util.Base64

/**
 * Serves `ws://127.0.0.1:<port>/ws` like a base server (no extensions):
 * `connect_to_context` succeeds, each `add_message` is answered with
 * `{success, response_id}` at once, then one `on_token` frame per entry of
 * [rawTokens] (each the exact JSON string literal, quotes included, put in
 * the frame) and `on_stop_token`.
 */
class RawTokenServer(private val rawTokens: List<String>) : AutoCloseable {
    private val listener = ServerSocket(0, 50, InetAddress.getByName("127.0.0.1"))
    private val sockets = java.util.Collections.synchronizedList(mutableListOf<Socket>())
    val wsUrl = "ws://127.0.0.1:${listener.localPort}/ws"

    init {
        Thread {
            try {
                while (true) {
                    val socket = listener.accept()
                    sockets.add(socket)
                    Thread { serve(socket) }.apply { isDaemon = true }.start()
                }
            } catch (_: IOException) {
                // closed
            }
        }.apply { isDaemon = true }.start()
    }

    override fun close() {
        listener.close()
        synchronized(sockets) { sockets.forEach { it.close() } }
    }

    private fun serve(socket: Socket) {
        try {
            socket.use {
                val input = DataInputStream(socket.getInputStream().buffered())
                val out = socket.getOutputStream()
                val key = handshake(input)
                val accept = Base64.getEncoder().encodeToString(
                    MessageDigest.getInstance("SHA-1").digest((key + GUID).toByteArray()),
                )
                out.write(
                    ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
                        "Connection: Upgrade\r\nSec-WebSocket-Accept: $accept\r\n\r\n").toByteArray(),
                )
                out.flush()
                var n = 0
                while (true) {
                    val (opcode, data) = readFrame(input)
                    when (opcode) {
                        0x8 -> {
                            writeFrame(out, 0x8, data.copyOf(minOf(2, data.size)))
                            return
                        }
                        0x9 -> writeFrame(out, 0xA, data)
                        0x1 -> {
                            val request = parseJson(data.decodeToString()) as Map<*, *>
                            val id = when (val v = request["id"]) {
                                is String -> jsonString(v)
                                null -> "null"
                                else -> v.toString()
                            }
                            when (request["method"]) {
                                "connect_to_context" -> text(out, "{\"id\":$id,\"result\":{\"success\":true,\"agent_speaks_first\":false}}")
                                "add_message" -> {
                                    n++
                                    val rid = "raw-$n"
                                    text(out, "{\"id\":$id,\"result\":{\"success\":true,\"response_id\":\"$rid\"}}")
                                    // One frame per token, each flushed on its own.
                                    for (raw in rawTokens) {
                                        text(out, "{\"method\":\"on_token\",\"params\":{\"token\":$raw,\"response_id\":\"$rid\"}}")
                                    }
                                    text(out, "{\"method\":\"on_stop_token\",\"params\":{\"response_id\":\"$rid\"}}")
                                }
                                else -> if (request["id"] != null) text(out, "{\"id\":$id,\"result\":{\"success\":true}}")
                            }
                        }
                    }
                }
            }
        } catch (_: IOException) {
            // the client went away or close() ran
        }
    }

    private fun handshake(input: DataInputStream): String {
        var key: String? = null
        while (true) {
            val line = readLine(input)
            if (line.isEmpty()) break
            if (line.lowercase().startsWith("sec-websocket-key:")) key = line.substringAfter(':').trim()
        }
        return key ?: throw IOException("no Sec-WebSocket-Key")
    }

    private fun readLine(input: DataInputStream): String {
        val b = StringBuilder()
        while (true) {
            val c = input.read()
            if (c < 0) throw IOException("eof in the handshake")
            if (c == '\n'.code) return b.toString().trimEnd('\r')
            b.append(c.toChar())
        }
    }

    private fun readFrame(input: DataInputStream): Pair<Int, ByteArray> {
        val b0 = input.readUnsignedByte()
        val b1 = input.readUnsignedByte()
        var len = (b1 and 0x7F).toLong()
        if (len == 126L) len = input.readUnsignedShort().toLong()
        else if (len == 127L) len = input.readLong()
        val mask = ByteArray(4)
        if (b1 and 0x80 != 0) input.readFully(mask)
        val data = ByteArray(len.toInt())
        input.readFully(data)
        for (i in data.indices) data[i] = (data[i].toInt() xor mask[i % 4].toInt()).toByte()
        return (b0 and 0x0F) to data
    }

    private fun text(out: OutputStream, frame: String) = writeFrame(out, 0x1, frame.toByteArray(Charsets.UTF_8))

    private fun writeFrame(out: OutputStream, opcode: Int, payload: ByteArray) {
        out.write(0x80 or opcode)
        when {
            payload.size < 126 -> out.write(payload.size)
            payload.size < 65536 -> {
                out.write(126)
                out.write(payload.size shr 8)
                out.write(payload.size and 0xFF)
            }
            else -> {
                out.write(127)
                for (shift in 56 downTo 0 step 8) out.write(((payload.size.toLong() shr shift) and 0xFF).toInt())
            }
        }
        out.write(payload)
        out.flush()
    }

    private companion object {
        const val GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    }
}
