"""The chat adapter's join and leave notices taken out of a received block
(``split_notices``: what a churn run's counting receivers do with every
read; ``strip_notices``: what the others do), against a line-by-line parse
with the server's own protocol module."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bench.wire.chat import split_notices, strip_notices
from server import protocol

NAMES = st.text(alphabet="abcrz019-_.", min_size=1, max_size=12)
REASONS = st.sampled_from(["quit", "connection reset", "timed out (60 s)", "kicked: flood"])
OTHER = st.sampled_from(
    [
        b"alice: hello there\n",
        b"bob: *** not a notice (said in chat)\n",
        b"*** carol is now known as dave\n",
        b"*** Welcome, erin! 3 online: a, b, erin\n",
        b"frank: \x01probe 3 17 123456789 xyz abcdef\r\n",
    ]
)


@st.composite
def blocks(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """A block of whole lines: notices, chat and other notices, with ``\\n`` or ``\\r\\n``."""
    lines: list[bytes] = []
    for kind in draw(st.lists(st.sampled_from(["join", "left", "other"]), max_size=30)):
        if kind == "join":
            line = protocol.encode_joined(draw(NAMES))
        elif kind == "left":
            line = protocol.encode_left(draw(NAMES), draw(REASONS))
        else:
            line = draw(OTHER)
        if kind != "other" and draw(st.booleans()):
            line = line[:-1] + b"\r\n"
        lines.append(line)
    return b"".join(lines), lines


@given(blocks())
def test_split_notices_agrees_with_the_protocol_line_by_line(made: tuple[bytes, list[bytes]]) -> None:
    block, lines = made
    rest, joins, leaves = split_notices(block)
    expected_rest, expected_joins, expected_leaves = b"", [], []
    for line in lines:
        event = protocol.parse_server_line(line.rstrip(b"\r\n").decode())
        if isinstance(event, protocol.Joined):
            expected_joins.append(event.name.encode())
        elif isinstance(event, protocol.Left):
            expected_leaves.append(event.name.encode())
        else:
            expected_rest += line
    assert (rest, joins, leaves) == (expected_rest, expected_joins, expected_leaves)
    assert strip_notices(block) == expected_rest


def test_a_block_without_notices_is_handed_back_as_it_is() -> None:
    block = b"alice: hi\nbob: *** hi\n"
    rest, joins, leaves = split_notices(block)
    assert rest is block and (joins, leaves) == ([], [])
    assert strip_notices(block) is block


def test_registration_knows_its_welcome_without_parsing_the_list_and_only_its_own() -> None:
    from bench.wire.chat import ChatRegistration

    reg = ChatRegistration("alice", ("",))
    assert reg.line(protocol.encode_prompt().rstrip(b"\n")).send == protocol.encode_line("alice")
    others = [f"user{i}" for i in range(2000)]
    # Chat that quotes a welcome is not one.
    assert reg.line(b"bob: *** Welcome, alice! Online (1): bob").done is False
    assert reg.waiting is None
    step = reg.line(protocol.encode_welcome("alice", ["alice", *others]).rstrip(b"\n"))
    assert step.done and step.error is None and reg.waiting == set()
