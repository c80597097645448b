"""The sans-IO protocol module, in memory."""

from __future__ import annotations

import pytest

from server import protocol as p

# -- framing ------------------------------------------------------------------


def test_decoder_returns_complete_lines_and_keeps_the_partial() -> None:
    d = p.LineDecoder(100)
    assert d.feed(b"hello\nwor") == [b"hello"]
    assert d.buffered == 3
    assert d.feed(b"ld\r\n\nlast") == [b"world", b""]
    assert d.feed(b"\n") == [b"last"]
    assert d.buffered == 0


@pytest.mark.parametrize("split_at", range(0, 40))
def test_decoder_gives_the_same_lines_whatever_the_split(split_at: int) -> None:
    stream = "alice: hé\r\nbob: ü 🎉\n*** carol joined\n".encode()
    assert split_at <= len(stream)
    d = p.LineDecoder(100)
    lines = d.feed(stream[:split_at]) + d.feed(stream[split_at:])
    assert [p.decode_text(x) for x in lines] == ["alice: hé", "bob: ü 🎉", "*** carol joined"]
    assert d.buffered == 0


def test_decoder_byte_at_a_time() -> None:
    stream = b"one\ntwo\r\nthree\n"
    d = p.LineDecoder(10)
    out: list[bytes] = []
    for i in range(len(stream)):
        out += d.feed(stream[i : i + 1])
    assert out == [b"one", b"two", b"three"]


def test_line_at_the_limit_is_accepted_one_over_is_rejected() -> None:
    d = p.LineDecoder(8)
    assert d.feed(b"12345678\n") == [b"12345678"]
    assert d.feed(b"12345678\r\n") == [b"12345678"]
    with pytest.raises(p.LineTooLong) as info:
        d.feed(b"123456789\n")
    assert info.value.limit == 8
    assert "8 bytes" in str(info.value)


def test_strict_decoder_rejects_an_endless_line_without_a_newline() -> None:
    d = p.LineDecoder(8)
    with pytest.raises(p.LineTooLong):
        d.feed(b"x" * 50)


def test_discarding_decoder_drops_oversized_lines_and_resyncs() -> None:
    d = p.LineDecoder(8, discard_oversized=True)
    assert d.feed(b"ok\n" + b"y" * 20 + b"\nnext\n") == [b"ok", b"next"]
    assert d.oversized == 1
    # An oversized line that arrives in pieces without a newline: never buffered past the limit.
    for _ in range(100):
        assert d.feed(b"z" * 7) == []
        assert d.buffered <= 9
    assert d.feed(b"zz\nafter\n") == [b"after"]
    assert d.oversized == 2


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert p.decode_text(b"caf\xc3\xa9 \xff\xfe ok") == "café \ufffd\ufffd ok"


def test_sanitize_text_neutralises_control_characters() -> None:
    assert p.sanitize_text("plain text") == "plain text"
    assert p.sanitize_text("a\tb") == "a b"
    cleaned = p.sanitize_text("red \x1b[31mALERT\x00\x07 \u2028x")
    assert "\x1b" not in cleaned and "\x00" not in cleaned and "\x07" not in cleaned and "\u2028" not in cleaned
    assert cleaned == "red \ufffd[31mALERT\ufffd\ufffd \ufffdx"


# -- names --------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected", [("alice", "alice"), ("  bob \r", "bob"), ("Zoë_99", "Zoë_99"), ("x" * 32, "x" * 32)]
)
def test_valid_names_are_stripped(raw: str, expected: str) -> None:
    assert p.validate_name(raw) == expected


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("x" * 33, "longer than 32"),
        ("two words", "spaces"),
        ("bell\x07", "control"),
        ("esc\x1b[31m", "control"),
        ("nul\x00", "control"),
        ("a:b", "':'"),
        ("a,b", "','"),
        ("***", "start with"),
        ("*bob", "start with"),
        ("!root", "start with"),
        ("[private]", "start with"),
        ("/nick", "start with"),
        ("?who", "start with"),
        ("\ufffd\ufffd", "valid UTF-8"),
        ("bob\ufffd", "U+FFFD"),
    ],
)
def test_invalid_names_are_refused_with_a_reason(raw: str, reason: str) -> None:
    with pytest.raises(p.ProtocolError) as info:
        p.validate_name(raw)
    assert reason in str(info.value)


def test_names_of_invalid_utf8_are_refused() -> None:
    """A fuzzer's name: invalid UTF-8 decodes to U+FFFD, which is printable."""
    for raw in (b"\xff\xfe", b"\xc3", b"ok\x80"):
        with pytest.raises(p.ProtocolError, match="valid UTF-8"):
            p.validate_name(p.decode_text(raw))


def test_name_key_is_case_insensitive() -> None:
    assert p.name_key("Alice") == p.name_key("ALICE") == p.name_key("alice")
    assert p.name_key("Straße") == p.name_key("STRASSE")
    assert p.name_key("alice") != p.name_key("alicia")


# -- client lines -------------------------------------------------------------


@pytest.mark.parametrize(
    "line, command",
    [
        ("hello there", p.Say("hello there")),
        ("//not a command", p.Say("/not a command")),
        ("/who", p.Who()),
        ("/WHO", p.Who()),
        ("/help", p.Help()),
        ("/quit", p.Quit("")),
        ("/quit see you", p.Quit("see you")),
        ("/me waves", p.Me("waves")),
        ("/nick bob2", p.Nick("bob2")),
        ("/msg bob psst, hi", p.PrivateMessage("bob", "psst, hi")),
        ("", None),
        ("   ", None),
    ],
)
def test_parse_client_line(line: str, command: p.ClientCommand | None) -> None:
    assert p.parse_client_line(line) == command


@pytest.mark.parametrize(
    "line, message", [("/frobnicate", "unknown command"), ("/msg bob", "usage"), ("/me", "usage"), ("/nick", "usage")]
)
def test_bad_commands_raise_protocol_error(line: str, message: str) -> None:
    with pytest.raises(p.ProtocolError, match=message):
        p.parse_client_line(line)


def test_encode_say_escapes_a_leading_slash() -> None:
    assert p.encode_say("/etc/passwd is a path") == b"//etc/passwd is a path\n"
    assert p.parse_client_line(p.decode_text(p.encode_say("/etc")[:-1])) == p.Say("/etc")
    assert p.encode_say("hi") == b"hi\n"


# -- server lines round trip ----------------------------------------------------


@pytest.mark.parametrize(
    "encoded, event",
    [
        (p.encode_prompt(), p.Prompt(p.NAME_PROMPT)),
        (p.encode_welcome("alice", ["alice", "bob"]), p.Welcome("alice", ("alice", "bob"))),
        (p.encode_joined("bob"), p.Joined("bob")),
        (p.encode_left("bob", "quit: bye (really)"), p.Left("bob", "quit: bye (really)")),
        (p.encode_renamed("bob", "rob"), p.Renamed("bob", "rob")),
        (p.encode_who(["a", "b", "c"]), p.Online(("a", "b", "c"))),
        (p.encode_who([]), p.Online(())),
        (p.encode_disconnect("server full"), p.Disconnected("server full")),
        (p.encode_error("Name taken: bob"), p.Error("Name taken: bob")),
        (p.encode_message("alice", "hi: there *** x"), p.Message("alice", "hi: there *** x")),
        (p.encode_message("alice", ""), p.Message("alice", "")),
        (p.encode_action("alice", "waves at bob"), p.Action("alice", "waves at bob")),
        (p.encode_private("alice", "psst"), p.Private("alice", "psst")),
        (p.encode_private_echo("bob", "psst"), p.PrivateEcho("bob", "psst")),
    ],
)
def test_every_server_line_round_trips(encoded: bytes, event: p.ServerEvent) -> None:
    assert encoded.endswith(b"\n") and encoded.count(b"\n") == 1
    text = p.decode_text(encoded[:-1])
    assert p.parse_server_line(text) == event


def test_help_is_a_notice_listing_every_command() -> None:
    event = p.parse_server_line(p.decode_text(p.encode_help()[:-1]))
    assert isinstance(event, p.Notice)
    for usage in p.COMMAND_USAGE.values():
        assert usage in event.text


def test_a_valid_name_can_never_look_like_a_server_line() -> None:
    # Whatever a user names themselves, their message parses as a Message from them.
    for name in ["alice", "x", "Zoë", "a-b.c_d", "123"]:
        assert p.parse_server_line(f"{p.validate_name(name)}: *** fake notice") == p.Message(name, "*** fake notice")


def test_unrecognised_server_line_is_a_protocol_error() -> None:
    with pytest.raises(p.ProtocolError):
        p.parse_server_line("no separator here")
    assert p.split_message("no separator") is None
    assert p.split_message("two words: x") is None
    assert p.split_message("bob: x") == ("bob", "x")


def test_long_name_lists_are_cut_with_an_exact_count() -> None:
    names = [f"user{i:04d}" for i in range(1000)]
    for encoded in (p.encode_welcome("user0000", names), p.encode_who(names)):
        assert len(encoded) < p.DEFAULT_MAX_LINE_BYTES
        event = p.parse_server_line(p.decode_text(encoded[:-1]))
        assert isinstance(event, p.Welcome | p.Online)
        assert event.count == 1000
        shown = event.online if isinstance(event, p.Welcome) else event.names
        assert 100 < len(shown) < 1000
        assert list(shown) == names[: len(shown)]
        assert encoded.endswith(f" (+{1000 - len(shown)} more)\n".encode())


def test_welcome_with_a_partial_name_list_keeps_the_exact_count() -> None:
    event = p.parse_server_line(p.decode_text(p.encode_welcome("zed", ["a", "b"], total=10_000)[:-1]))
    assert event == p.Welcome("zed", ("a", "b"), 10_000)
