"""Text that is not plain ASCII: non-ASCII tokens through the real server,
and text split badly across `on_token` frames (inside a grapheme, inside a
surrogate pair's escape) through a raw server that writes the frames by
hand. The reassembled text must be exact and every token what was sent."""

from __future__ import annotations

import asyncio
from typing import List, Tuple

import tokenrelay
from tokenrelay import events as ev

from conftest import CountingProvider, Server, client_for, new_context
from rawws import RawTokenServer

WAIT = 30.0

FAMILY = "\U0001F469\u200d\U0001F469\u200d\U0001F467"  # 👩‍👩‍👧: woman ZWJ woman ZWJ girl
GRINNING = "\U0001F600"  # 😀, JSON escape "\ud83d\ude00"


async def reply_events(conn: tokenrelay.Connection, text: str) -> Tuple[List[str], tokenrelay.Response, List[object]]:
    """Sends `text`; returns the reply's token strings in order, the reply,
    and every error event seen meanwhile."""
    request = await conn.send_message(text)
    mine = None
    seen: List[str] = []
    errors: List[object] = []

    async def read() -> tokenrelay.Response:
        nonlocal mine
        while True:
            event = await conn.next_event()
            assert event is not None, "the connection ended"
            if isinstance(event, ev.ResponseStarted) and event.request_id == request:
                mine = event.response_id
            elif isinstance(event, ev.Token) and event.response_id == mine:
                seen.append(event.token)
            elif isinstance(event, ev.ErrorEvent):
                errors.append(event.error)
            elif isinstance(event, ev.ResponseComplete) and event.response.request_id == request:
                return event.response

    response = await asyncio.wait_for(read(), WAIT)
    return seen, response, errors


async def test_non_ascii_tokens_through_the_real_server(
    server: Server, admin: tokenrelay.AdminClient, provider: CountingProvider
) -> None:
    # The engine splits at whitespace, so each word comes back as one token.
    words = ["é", "日本語", GRINNING, FAMILY, "e\u0301", "Ω≈ç", '"quoted"', "back\\slash", "end"]
    ctx = await new_context(admin)
    async with client_for(server, provider).connect(ctx) as conn:
        seen, reply, errors = await reply_events(conn, "[echo] " + " ".join(words))
    assert errors == []
    assert reply.status == "complete"
    assert reply.text == " ".join(words)
    assert seen == [w + " " for w in words[:-1]] + [words[-1]]


# Each entry: the JSON string literal written into one on_token frame, and
# the text it stands for. Raw UTF-8 and \u escapes both appear.
SPLIT_INSIDE_GRAPHEMES = [
    ('"family: "', "family: "),
    # 👩‍👩‍👧 cut after each ZWJ: one grapheme over three frames.
    ('"\U0001F469\u200d"', "\U0001F469\u200d"),
    ('"\\ud83d\\udc69\\u200d"', "\U0001F469\u200d"),
    ('"\U0001F467"', "\U0001F467"),
    # e + COMBINING ACUTE ACCENT: the mark arrives alone in the next frame,
    # once raw and once escaped.
    ('", caf"', ", caf"),
    ('"e"', "e"),
    ('"\u0301"', "\u0301"),
    ('" re"', " re"),
    ('"\\u0301"', "\u0301"),
    # A non-BMP character as its surrogate-pair escape, in one frame.
    ('", \\ud83d\\ude00"', ", " + GRINNING),
    ('" end"', " end"),
]


async def test_text_split_inside_graphemes_arrives_exact() -> None:
    async with RawTokenServer([raw for raw, _ in SPLIT_INSIDE_GRAPHEMES]) as raw_server:
        client = tokenrelay.Client(raw_server.ws_url, token_provider=lambda _ctx: "key", connect_timeout=WAIT)
        async with client.connect("ctx") as conn:
            seen, reply, errors = await reply_events(conn, "hi")
    sent = [text for _, text in SPLIT_INSIDE_GRAPHEMES]
    assert errors == []
    assert reply.status == "complete"
    assert reply.text == "".join(sent)
    assert reply.text == f"family: {FAMILY}, cafe\u0301 re\u0301, {GRINNING} end"
    assert seen == sent
    assert all("\ufffd" not in t for t in seen)


# 😀 as its surrogate-pair escape cut between the two halves: each frame on
# its own holds a lone surrogate, which strict JSON decoders refuse. A
# server whose strings are UTF-16 (JavaScript, Java) cuts text this way.
SPLIT_SURROGATE_PAIR = ['"before "', '"\\ud83d"', '"\\ude00"', '" after"']


async def test_a_surrogate_pair_escape_split_across_frames_is_joined() -> None:
    async with RawTokenServer(SPLIT_SURROGATE_PAIR) as raw_server:
        client = tokenrelay.Client(raw_server.ws_url, token_provider=lambda _ctx: "key", connect_timeout=WAIT)
        async with client.connect("ctx") as conn:
            seen, reply, errors = await reply_events(conn, "hi")
    # Exactly the text sent: the two halves make one 😀 (no U+FFFD, no
    # hole), and no frame of it is reported as a protocol error.
    assert reply.text == f"before {GRINNING} after", (reply.text, errors)
    assert errors == []
    assert reply.status == "complete"
    assert "".join(seen) == reply.text
    assert all("\ufffd" not in t for t in seen)
    # The whole tokens around the cut arrive as sent; the halves arrive as
    # one or two token events that together make 😀 (a Rust string cannot
    # hold a lone surrogate, so the SDK may join them before delivery).
    assert seen[0] == "before " and seen[-1] == " after", seen
    assert "".join(seen[1:-1]) == GRINNING, seen
