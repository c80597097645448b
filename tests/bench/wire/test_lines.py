"""The harness's bytes-level fast paths for lines agree with the per-line API.

``BlockLineDecoder.feed_block`` + ``split_block`` (bench.wire.lines) must
give exactly what the protocol's ``LineDecoder.feed`` gives (limits
included), and ``probeline.line_layout`` must agree with the probe line's
definition (the name before the first ``": "``) on every line kind whenever
it accepts a block.
"""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.measure.probeline import line_layout
from bench.wire.lines import BlockLineDecoder, split_block
from server import protocol as p

LIMIT = 64


def _feed_all(decoder: BlockLineDecoder, chunks: list[bytes], *, block: bool) -> tuple[list[bytes], str | None]:
    lines: list[bytes] = []
    try:
        for chunk in chunks:
            if block:
                lines += split_block(decoder.feed_block(chunk))
            else:
                lines += decoder.feed(chunk)
    except p.LineTooLong as exc:
        return lines, str(exc)
    return lines, None


@given(
    st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=20),
    st.lists(st.sampled_from([b"\n", b"\r\n"]), min_size=20, max_size=20),
    st.lists(st.integers(0, 200), max_size=12),
    st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_feed_block_then_split_block_is_feed(
    bodies: list[bytes], terminators: list[bytes], cuts: list[int], long_line: bool
) -> None:
    stream = b"".join(body + term for body, term in zip(bodies, terminators, strict=False))
    if long_line:
        stream += b"x" * (LIMIT + 5) + b"\n" + b"after\n"
    bounds = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    chunks = [stream[a:b] for a, b in itertools.pairwise(bounds)]
    expected = _feed_all(p.LineDecoder(LIMIT), chunks, block=False)
    got = _feed_all(BlockLineDecoder(LIMIT), chunks, block=True)
    assert got == expected


def test_feed_block_keeps_the_partial_line_and_returns_whole_lines() -> None:
    d = BlockLineDecoder(LIMIT)
    assert d.feed_block(b"ab") == b""
    assert d.feed_block(b"c\nde\r\nf") == b"abc\nde\r\n"
    assert d.buffered == 1
    assert split_block(b"abc\nde\r\n") == [b"abc", b"de"]
    with pytest.raises(p.LineTooLong):
        BlockLineDecoder(4).feed_block(b"12345678")


def test_feed_block_in_discarding_mode_drops_oversized_lines_like_feed() -> None:
    chunks = [b"ok\n" + b"x" * 100, b"yy\nfine\n"]
    a, b = BlockLineDecoder(LIMIT, discard_oversized=True), p.LineDecoder(LIMIT, discard_oversized=True)
    assert [line for c in chunks for line in split_block(a.feed_block(c))] == [
        line for c in chunks for line in b.feed(c)
    ]
    assert a.oversized == b.oversized == 1


# -- line_layout -------------------------------------------------------------

#: One line of every kind the server sends, plus chat lines of many shapes.
EVERY_KIND = [
    p.encode_prompt(),
    p.encode_welcome("alice", ["alice", "bob"]),
    p.encode_joined("bob"),
    p.encode_left("bob", "quit"),
    p.encode_renamed("bob", "rob"),
    p.encode_who(["alice", "rob"]),
    p.encode_help(),
    p.encode_disconnect("server shutting down"),
    p.encode_error("name taken"),
    p.encode_action("alice", "waves a b"),
    p.encode_private("alice", "psst a b"),
    p.encode_private_echo("bob", "psst a b"),
    p.encode_message("alice", "a b c"),
    p.encode_message("bob", "x: y z"),
    p.encode_message("ünï", "a b c"),
    b"no separator here at all\n",
    b": empty name a b\n",
    b":colon-first: a b c\n",
    b"two words: a b c\n",
    b"*star: a b c\n",
    b"name:nospace a b c\n",
    b"alice: a b c\r\n",
    b"bad\xff\xfeutf8: a b c\n",
]


def _check_layout(block: bytes, text_spaces: int) -> bool:
    """If the layout accepts the block, it must agree with split_message on
    every line; returns whether it accepted."""
    layout = line_layout(block, text_spaces)
    if layout is None:
        return False
    lines = split_block(block)
    assert len(lines) == len(layout.starts)
    for i, line in enumerate(lines):
        s, sep, e = int(layout.starts[i]), int(layout.spaces[i, 0]), int(layout.ends[i])
        assert block[s:e] == line
        name, found, text = line.partition(b": ")
        assert found and name, line
        assert (name, text) == (block[s : sep - 1], block[sep + 1 : e])
        assert [int(x) for x in layout.spaces[i, 1:]] == [s + j for j, ch in enumerate(line) if ch == 32][1:]
    return True


def test_layout_agrees_with_the_probe_line_split_on_every_line_kind() -> None:
    for line in EVERY_KIND:
        for k in range(6):
            accepted = _check_layout(line, k)
            if accepted:
                # Only lines with a name before a ": " are laid out (and the
                # recorder then compares that name with a sender's).
                assert b": " in line and not line.startswith(b": ")


def test_layout_accepts_a_block_of_chat_lines_and_refuses_one_foreign_line() -> None:
    chat = [p.encode_message(f"user{i}", f"~cb2 {i} {i * 7} 123456789 payload{i} ABCDEFGH") for i in range(50)]
    block = b"".join(chat)
    assert _check_layout(block, 5)
    assert line_layout(block, 4) is None
    for kind in EVERY_KIND:
        mixed = b"".join(chat[:20]) + kind + b"".join(chat[20:])
        name, found, _ = kind.rstrip(b"\n").partition(b": ")
        if not found or not name or b" " in name:
            assert line_layout(mixed, 5) is None, kind
        else:
            _check_layout(mixed, 5)


@given(st.lists(st.text(alphabet="ab :*![é\r", max_size=12), min_size=1, max_size=8), st.integers(0, 4))
@settings(max_examples=500, deadline=None)
def test_layout_agrees_with_the_probe_line_split_on_random_lines(texts: list[str], text_spaces: int) -> None:
    block = b"".join(t.encode("utf-8") + b"\n" for t in texts)
    _check_layout(block, text_spaces)


def test_layout_of_random_canonical_blocks_is_always_found() -> None:
    rng = random.Random(5)
    for _ in range(50):
        lines = []
        for _ in range(rng.randint(1, 30)):
            name = "".join(rng.choice("abcXYZ09-_é") for _ in range(rng.randint(1, 10)))
            words = ["".join(rng.choice("xyz:!*~") for _ in range(rng.randint(0, 5))) for _ in range(4)]
            lines.append(p.encode_message(name, " ".join(words)))
        block = b"".join(lines)
        # Found unless a byte is not printable ASCII (then the per-line path decides).
        assert _check_layout(block, 3) == block.isascii()


def test_layout_refuses_control_characters_and_utf8() -> None:
    good = p.encode_message("alice", "a b c")
    assert _check_layout(good * 3, 2)
    for bad in (b"al\xc3\xa9: a b c\n", b"alice: a b\tc\n", b"alice: a b c\r\n", b"alice: a\x00 b c\n"):
        assert line_layout(good + bad + good, 2) is None, bad
