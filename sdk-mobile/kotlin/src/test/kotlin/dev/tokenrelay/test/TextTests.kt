// Text that is not plain ASCII: non-ASCII tokens through the real server,
// and text split badly across `on_token` frames (inside a grapheme, inside
// a surrogate pair's escape) through RawTokenServer, which writes the
// frames by hand. The reassembled text must be exact and every token what
// was sent.
package dev.tokenrelay.test

import dev.tokenrelay.Client
import dev.tokenrelay.ClientConfig
import dev.tokenrelay.Connection
import dev.tokenrelay.Event
import dev.tokenrelay.Response
import dev.tokenrelay.ResponseStatus
import dev.tokenrelay.TokenRelayException
import dev.tokenrelay.use
import kotlinx.coroutines.withTimeout

/** 👩‍👩‍👧: woman ZWJ woman ZWJ girl. */
private const val FAMILY = "\uD83D\uDC69\u200D\uD83D\uDC69\u200D\uD83D\uDC67"

/** 😀, JSON escape "\ud83d\ude00". */
private const val GRINNING = "\uD83D\uDE00"

private class Reply(val response: Response, val tokens: List<String>, val errors: List<TokenRelayException>)

/** Sends [text] and reads [conn]'s events until its reply ends (within 20 s). */
private suspend fun replyTo(conn: Connection, events: EventReader, text: String): Reply {
    val request = conn.sendMessage(text)
    var mine: String? = null
    val tokens = mutableListOf<String>()
    val errors = mutableListOf<TokenRelayException>()
    val response = withTimeout(20_000) {
        while (true) {
            when (val e = events.nextOrNull() ?: throw TestFailure("the event flow ended before the reply")) {
                is Event.ResponseStarted -> if (e.requestId?.toLong() == request) mine = e.responseId
                is Event.Token -> if (e.responseId == mine) tokens.add(e.token)
                is Event.ErrorEvent -> errors.add(e.error)
                is Event.ResponseComplete -> if (e.response.requestId?.toLong() == request) return@withTimeout e.response
                else -> {}
            }
        }
        @Suppress("UNREACHABLE_CODE")
        throw IllegalStateException()
    }
    return Reply(response, tokens, errors)
}

/** One reply through a [RawTokenServer] sending [rawTokens]. */
private suspend fun replyThrough(rawTokens: List<String>): Reply =
    RawTokenServer(rawTokens).use { raw ->
        Client(ClientConfig(wsUrl = raw.wsUrl)) { _ -> "key" }.use { client ->
            client.connect("ctx").use { conn ->
                val events = EventReader(conn.events())
                try {
                    replyTo(conn, events, "hi")
                } finally {
                    events.cancel()
                }
            }
        }
    }

/** Each pair: the JSON string literal written into one on_token frame, and
 * the text it stands for. Raw UTF-8 and \u escapes both appear. */
private val SPLIT_INSIDE_GRAPHEMES = listOf(
    "\"family: \"" to "family: ",
    // 👩‍👩‍👧 cut after each ZWJ: one grapheme over three frames.
    "\"\uD83D\uDC69\u200D\"" to "\uD83D\uDC69\u200D",
    "\"\\ud83d\\udc69\\u200d\"" to "\uD83D\uDC69\u200D",
    "\"\uD83D\uDC67\"" to "\uD83D\uDC67",
    // e + COMBINING ACUTE ACCENT: the mark arrives alone in the next frame,
    // once raw and once escaped.
    "\", caf\"" to ", caf",
    "\"e\"" to "e",
    "\"\u0301\"" to "\u0301",
    "\" re\"" to " re",
    "\"\\u0301\"" to "\u0301",
    // A non-BMP character as its surrogate-pair escape, in one frame.
    "\", \\ud83d\\ude00\"" to ", $GRINNING",
    "\" end\"" to " end",
)

fun textTests(): List<Test> = listOf(
    Test("non-ASCII tokens through the real server arrive exact") { server ->
        // The engine splits at whitespace: each word comes back as one token.
        val words = listOf("é", "日本語", GRINNING, FAMILY, "e\u0301", "Ω≈ç", "\"quoted\"", "back\\slash", "end")
        val contextId = server.newContext()
        val provider = CountingProvider(server)
        Client(server.wsUrl, provider::token).use { client ->
            client.connect(contextId).use { conn ->
                val events = EventReader(conn.events())
                try {
                    val r = replyTo(conn, events, "[echo] " + words.joinToString(" "))
                    assertEq(r.errors, emptyList(), "error events")
                    assertEq(r.response.status, ResponseStatus.COMPLETE, "status")
                    assertEq(r.response.text, words.joinToString(" "), "text")
                    assertEq(r.tokens, words.dropLast(1).map { "$it " } + words.last(), "tokens")
                } finally {
                    events.cancel()
                }
            }
        }
    },

    Test("text split inside graphemes arrives exact, token by token") { _ ->
        val r = replyThrough(SPLIT_INSIDE_GRAPHEMES.map { it.first })
        val sent = SPLIT_INSIDE_GRAPHEMES.map { it.second }
        assertEq(r.errors, emptyList(), "error events")
        assertEq(r.response.status, ResponseStatus.COMPLETE, "status")
        assertEq(r.response.text, sent.joinToString(""), "text")
        assertEq(r.response.text, "family: $FAMILY, cafe\u0301 re\u0301, $GRINNING end", "text")
        assertEq(r.tokens, sent, "tokens")
        check(r.tokens.none { '\uFFFD' in it }) { "U+FFFD in ${r.tokens}" }
    },

    Test("a surrogate pair escape split across two frames is joined, not lost or replaced") { _ ->
        // 😀 as its surrogate-pair escape cut between the two halves: each
        // frame on its own holds a lone surrogate, which strict JSON decoders
        // refuse. A server whose strings are UTF-16 (JavaScript, Java) cuts
        // text this way.
        val r = replyThrough(listOf("\"before \"", "\"\\ud83d\"", "\"\\ude00\"", "\" after\""))
        // Exactly the text sent: the halves make one 😀 (no U+FFFD, no
        // hole), and no frame of it is reported as a protocol error.
        assertEq(r.response.text, "before $GRINNING after", "text (error events: ${r.errors})")
        assertEq(r.errors, emptyList(), "error events")
        assertEq(r.response.status, ResponseStatus.COMPLETE, "status")
        assertEq(r.tokens.joinToString(""), r.response.text, "tokens joined")
        check(r.tokens.none { '\uFFFD' in it }) { "U+FFFD in ${r.tokens}" }
        // The whole tokens around the cut arrive as sent; the halves arrive
        // as one or two token events that together make 😀 (a Kotlin string
        // can hold each half, a Rust string cannot, so the SDK may join them).
        assertEq(r.tokens.first(), "before ", "first token")
        assertEq(r.tokens.last(), " after", "last token")
        assertEq(r.tokens.subList(1, r.tokens.size - 1).joinToString(""), GRINNING, "the halves")
    },
)
