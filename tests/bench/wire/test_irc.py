"""The IRC adapter without sockets: framing, parsing, registration, traffic."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench import wire
from bench.measure import probe
from bench.measure.integrity import IntegrityTracker
from bench.measure.recorder import DeliveryRecorder
from bench.wire import chat, irc, irc_adapter
from server import protocol

# -- framing ------------------------------------------------------------------------


def test_splitter_handles_crlf_bare_lf_partial_lines_and_empty_lines() -> None:
    s = irc.LineSplitter()
    assert s.feed(b":a 001 x :hi\r\n:a PING") == [b":a 001 x :hi"]
    assert s.buffered == len(b":a PING")
    assert s.feed(b" :t\r") == []
    assert s.feed(b"\n\r\nPING :u\n") == [b":a PING :t", b"PING :u"]
    assert s.buffered == 0


def test_splitter_refuses_a_line_past_its_limit() -> None:
    s = irc.LineSplitter(512)
    assert s.feed(b"x" * 510 + b"\r\n") == [b"x" * 510]  # exactly 512 with CR LF
    with pytest.raises(irc.LineTooLong):
        s.feed(b"x" * 511 + b"\r\n")
    with pytest.raises(irc.LineTooLong):  # an unterminated line that can no longer fit
        irc.LineSplitter(512).feed(b"y" * 512)


def test_encode_frames_with_crlf_and_keeps_the_512_byte_limit() -> None:
    assert irc.encode("NICK", "bob") == b"NICK bob\r\n"
    assert irc.encode("PRIVMSG", "#c", "hello world") == b"PRIVMSG #c :hello world\r\n"
    assert irc.encode("PRIVMSG", "#c", ":)") == b"PRIVMSG #c ::)\r\n"
    assert irc.encode("PONG", "") == b"PONG :\r\n"
    head = len(b"PRIVMSG #c :a \r\n")  # text with a space: sent as a trailing parameter
    assert len(irc.encode("PRIVMSG", "#c", "a " + "x" * (512 - head))) == 512
    with pytest.raises(irc.LineTooLong):
        irc.encode("PRIVMSG", "#c", "a " + "x" * (513 - head))
    with pytest.raises(irc.IrcError, match="CR, LF or NUL"):
        irc.encode("PRIVMSG", "#c", "two\r\nlines")
    with pytest.raises(irc.IrcError, match="middle"):
        irc.encode("PRIVMSG", "#a b", "x")


def test_parse_prefix_numerics_trailing_and_tags() -> None:
    m = irc.parse(b":srv.example 001 bob :Welcome to IRC bob")
    assert (m.prefix, m.command, m.params) == ("srv.example", "001", ("bob", "Welcome to IRC bob"))
    m = irc.parse(b"@time=2024-01-01T00:00:00Z :bob!~b@127.0.0.1 privmsg #c :a :b c")
    assert (m.nick, m.command, m.params) == ("bob", "PRIVMSG", ("#c", "a :b c"))
    m = irc.parse(b"PING :token here")
    assert (m.prefix, m.command, m.params) == (None, "PING", ("token here",))
    m = irc.parse(b":s 366 bob #c :End of NAMES list")
    assert m.param(1) == "#c" and m.param(5, "none") == "none"
    with pytest.raises(irc.IrcError):
        irc.parse(b":only-a-prefix")


_nick = st.from_regex(r"[A-Za-z][A-Za-z0-9\-\[\]\\`^{}_|]{0,20}", fullmatch=True)
_text = st.text(st.characters(blacklist_characters="\r\n\0", blacklist_categories=("Cs",)), max_size=80)


@given(_nick, _text)
def test_privmsg_fast_path_agrees_with_the_parser(nick: str, text: str) -> None:
    line = f":{nick}!~u@127.0.0.1 ".encode() + irc.encode("PRIVMSG", "#chatbench", text)[:-2]
    fast = irc.privmsg(line)
    parsed = irc.parse(line)
    assert fast is not None
    assert (fast[0].decode(), fast[1].decode(), fast[2].decode("utf-8", "replace")) == (
        parsed.nick,
        parsed.params[0],
        parsed.params[1],
    )
    assert parsed.params[1] == text


def test_rfc1459_case_mapping() -> None:
    assert irc.lower("#Chat[Bench]\\~") == "#chat{bench}|^"


# -- registration ------------------------------------------------------------------------


def test_irc_registration_nick_user_001_join_366() -> None:
    reg = irc_adapter.IrcRegistration("cbab12-7", "#chatbench")
    assert reg.connected() == b"NICK cbab12-7\r\nUSER cbab12-7 0 * chatbench\r\n"
    # A PING before the welcome is answered; notices and the MOTD are ignored.
    assert reg.line(b"PING :abc") == wire.Step(send=b"PONG abc\r\n")
    assert reg.line(b":srv NOTICE * :*** Looking up your hostname") == wire.Step()
    assert reg.line(b":srv 366 cbab12-7 #chatbench :End") == wire.Step()  # not joining yet
    step = reg.line(b":srv 001 cbab12-7 :Welcome")
    assert step == wire.Step(send=b"JOIN #chatbench\r\n")
    assert reg.line(b":srv 375 cbab12-7 :- motd") == wire.Step()
    assert reg.line(b":cbab12-7!~c@127.0.0.1 JOIN :#chatbench") == wire.Step()
    assert reg.line(b":srv 366 cbab12-7 #other :End of NAMES list") == wire.Step()
    assert reg.line(b":srv 366 cbab12-7 #ChatBench :End of NAMES list").done


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        ([b":srv 433 * cbab12-7 :Nickname is already in use"], "nick refused: 433"),
        ([b":srv 432 * cbab12-7 :Erroneous nickname"], "nick refused: 432"),
        ([b":srv 001 cbab12-7 :Hi", b":srv 471 cbab12-7 #chatbench :Cannot join channel (+l)"], "join refused: 471"),
        ([b"ERROR :Closing connection"], "disconnected: Closing connection"),
        ([b":srv 464 * :Password incorrect"], "refused: 464"),
    ],
)
def test_irc_registration_failures_say_why(lines: list[bytes], error: str) -> None:
    reg = irc_adapter.IrcRegistration("cbab12-7", "#chatbench")
    steps = [reg.line(line) for line in lines]
    assert steps[-1].error is not None and steps[-1].error.startswith(error)
    assert all(s.error is None for s in steps[:-1])


def test_chat_registration_prompt_name_welcome() -> None:
    reg = chat.ChatRegistration("alice")
    assert reg.connected() == b""
    assert reg.line(protocol.encode_prompt().rstrip(b"\n")).send == protocol.encode_line("alice")
    assert reg.line(protocol.encode_welcome("alice", ["alice"]).rstrip(b"\n")).done
    again = chat.ChatRegistration("bob")
    again.line(protocol.encode_prompt().rstrip(b"\n"))
    assert again.line(protocol.encode_error("name taken").rstrip(b"\n")).error == "refused: name taken"
    assert again.line(protocol.encode_prompt().rstrip(b"\n")).error == "name refused"


# -- traffic ------------------------------------------------------------------------------


def test_irc_deliveries_classify_messages_pings_and_errors() -> None:
    a = irc_adapter.IrcAdapter("#chatbench")
    got = a.classify_lines(
        [
            b":bob!~bob@127.0.0.1 PRIVMSG #chatbench :hello: world",
            b"@tag=1 :carol!~c@h PRIVMSG #chatbench :tagged",
            b":bob!~bob@127.0.0.1 PRIVMSG alice :a private message, not the room",
            b":dave!~d@h JOIN :#chatbench",
            b"PING :srv.example",
            b":srv 372 alice :- motd",
        ]
    )
    assert got.pairs == [(b"bob", b"hello: world"), (b"carol", b"tagged")]
    assert got.reply == b"PONG srv.example\r\n"
    assert got.ended is None
    assert a.deliveries(b"ERROR :Closing Link: 127.0.0.1 (Ping timeout)\r\n").ended == (
        "disconnected: Closing Link: 127.0.0.1 (Ping timeout)"
    )
    assert a.classify(b"PING :x") == irc_adapter.Reply(b"PONG x\r\n")
    assert a.classify(b":bob!b@h PRIVMSG #chatbench :hi") == irc_adapter.Delivery("bob", "hi")
    assert a.classify(b":bob!b@h NOTICE #chatbench :hi") is None


def test_irc_deliveries_reach_the_recorder_as_measured_probes() -> None:
    a = irc_adapter.IrcAdapter()
    intended = time.monotonic_ns()
    text = probe.encode_probe(3, 0, intended, probe.make_payload(64, 3, 0))
    sent = a.encode_chat(text)
    assert sent == b"PRIVMSG #chatbench :" + text.encode() + b"\r\n"
    relayed = b":cbab12-3!~cbab12-3@127.0.0.1 " + sent  # what the server forwards
    got = a.deliveries(irc.LineSplitter().feed_block(relayed))
    assert got.pairs == [(b"cbab12-3", text.encode())] and not got.lines
    recorder = DeliveryRecorder({3: "cbab12-3"})
    tracker = IntegrityTracker()
    recorder.record_pairs(tracker, 0, got.pairs, intended + 2_000_000)
    assert recorder.delivered_all == recorder.delivered_measured == 1
    assert recorder.hist.summary()["max_us"] >= 1900
    # Attributed to the wrong nick: counted as corrupt, not delivered.
    wrong = IntegrityTracker()
    recorder.record_pairs(
        wrong, 0, a.deliveries(b":mallory!m@h PRIVMSG #chatbench :" + text.encode() + b"\r\n").pairs, intended
    )
    assert recorder.delivered_all == 1 and wrong.corrupted == 1


def test_irc_message_size_limit_leaves_room_for_the_relay_prefix() -> None:
    a = irc_adapter.IrcAdapter()
    assert a.check_text("x" * a.max_text_bytes) is None
    assert "512-byte" in (a.check_text("x" * (a.max_text_bytes + 1)) or "")
    assert "CR, LF" in (a.check_text("a\nb") or "")
    # the longest relayed line still fits 512 bytes with a maximal prefix
    prefix = b":" + b"n" * 31 + b"!~" + b"u" * 10 + b"@" + b"h" * 63 + b" "
    assert len(prefix + a.encode_chat("x" * a.max_text_bytes)) <= irc.MAX_LINE_BYTES
    with pytest.raises(irc.LineTooLong):
        a.encode_chat("x" * 600)


def test_adapters_by_name() -> None:
    assert isinstance(wire.get("chat"), chat.ChatAdapter)
    assert isinstance(wire.get("irc"), irc_adapter.IrcAdapter)
    with pytest.raises(ValueError, match="unknown protocol"):
        wire.get("xmpp")
    chat_adapter = wire.get("chat")
    assert chat_adapter.control(protocol.encode_disconnect("server shutting down").decode().rstrip("\n")) == (
        "disconnected: server shutting down"
    )
    assert chat_adapter.encode_chat("hi") == protocol.encode_say("hi")


_IRC_LINE = st.one_of(
    st.builds(
        lambda nick, text, end: b":" + nick + b"!u@h PRIVMSG #chatbench :" + text + end,
        st.sampled_from([b"alice", b"b0b", b"a:b", b"x"]),
        st.binary(max_size=40).filter(lambda t: b"\r" not in t and b"\n" not in t),
        st.sampled_from([b"\r\n", b"\n"]),
    ),
    st.sampled_from(
        [
            b"PING :token\r\n",
            b":srv 001 me :hi\r\n",
            b":bob PRIVMSG #chatbench :no user part\r\n",
            b":bob!u@h PRIVMSG #ChatBench :other spelling\r\n",
            b":bob!u@h PRIVMSG #elsewhere :other channel\r\n",
            b":bob!u@h PRIVMSG #chatbench notrailing\r\n",
            b":bob!u@h NOTICE #chatbench :a notice\r\n",
            b"\r\n",
            b":caf\xc3\xa9!u@h PRIVMSG #chatbench :utf-8 nick\r\n",
            b":bad!u@h PRIVMSG #chatbench :\xff\xfe\r\n",
            b"ERROR :Closing link\r\n",
        ]
    ),
)


@given(st.lists(_IRC_LINE, max_size=12), st.lists(st.integers(min_value=1, max_value=64), max_size=8))
def test_feed_block_then_split_is_feed(lines: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(lines)
    by_lines, by_block = irc.LineSplitter(), irc.LineSplitter()
    pos = 0
    for size in [*cuts, len(stream)]:
        chunk = stream[pos : pos + size]
        pos += size
        assert irc.split_block(by_block.feed_block(chunk)) == by_lines.feed(chunk)
        assert by_block.buffered == by_lines.buffered


def test_feed_block_refuses_a_line_past_its_limit_like_feed() -> None:
    for data in (b"x" * 20 + b"\r\nok\r\n", b"ok\r\n" + b"y" * 30):
        plain, block = irc.LineSplitter(16), irc.LineSplitter(16)
        with pytest.raises(irc.LineTooLong) as a:
            plain.feed(data)
        with pytest.raises(irc.LineTooLong) as b:
            block.feed_block(data)
        assert (a.value.args, plain.buffered) == (b.value.args, block.buffered)


@given(st.lists(_IRC_LINE, min_size=1, max_size=12))
def test_the_one_scan_path_gives_what_the_lines_give_one_by_one(lines: list[bytes]) -> None:
    """A whole block's deliveries are exactly those of its lines classified
    one by one, whichever path the block takes."""
    adapter = irc_adapter.IrcAdapter()
    block = b"".join(lines)
    whole = adapter.deliveries(block)
    one_by_one = adapter.classify_lines(irc.split_block(block))
    assert (whole.pairs, whole.reply, whole.ended) == (one_by_one.pairs, one_by_one.reply, one_by_one.ended)


def test_plain_channel_messages_take_one_scan() -> None:
    adapter = irc_adapter.IrcAdapter()
    plain = b":alice!a@h PRIVMSG #chatbench :hello\r\n:bob!b@h PRIVMSG #chatbench :~cb2 1 2 3 x\r\n"
    assert adapter.deliveries(plain).pairs == [(b"alice", b"hello"), (b"bob", b"~cb2 1 2 3 x")]
    assert adapter.deliveries(b"").pairs == []
    for other in (b"PING :t\r\n", b":bob!b@h PRIVMSG #elsewhere :x\r\n", b":b!b@h PRIVMSG #chatbench :\xff\r\n"):
        got = adapter.deliveries(plain + other)
        assert got.pairs[:2] == [(b"alice", b"hello"), (b"bob", b"~cb2 1 2 3 x")]


def test_join_and_quit_notices_are_split_out_or_stripped_alike() -> None:
    """A churn run's IRC receivers: the counting ones split the notices out
    (nicks joined and quit), the others only strip them; the rest is the same."""
    adapter = irc_adapter.IrcAdapter()
    block = (
        b":ann!u@h JOIN #chatbench\r\n"
        b":bob!u@h PRIVMSG #chatbench :hi QUIT JOIN\r\n"
        b":cid!u@h QUIT :Quit: bye\r\n"
        b":srv 353 x = #chatbench :a b\r\n"
    )
    rest, joins, quits = adapter.split_notices(block)
    assert (joins, quits) == ([b"ann"], [b"cid"])
    assert rest == b":bob!u@h PRIVMSG #chatbench :hi QUIT JOIN\r\n:srv 353 x = #chatbench :a b\r\n"
    assert adapter.strip_notices(block) == rest
    quiet = b":bob!u@h PRIVMSG #chatbench :hi\r\n"
    assert adapter.strip_notices(quiet) is quiet
