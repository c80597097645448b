"""The backplane's messages and the publisher's batching, without Redis."""

from __future__ import annotations

import pytest

from server.backplane import codec
from server.backplane.directory import Directory
from server.backplane.publisher import PUBLISH_BATCH_BYTES, coalesce

NODE = b"0123456789ab"
OTHER = b"ba9876543210"


def test_every_kind_round_trips() -> None:
    cases = [
        (codec.encode_lines(NODE, b"alice: hi\nbob: yo\n"), codec.LINES, (b"alice: hi\nbob: yo\n",)),
        (codec.encode_joined(NODE, "Zoë"), codec.JOINED, ("Zoë".encode(),)),
        (codec.encode_left(NODE, "bob", "quit: bye"), codec.LEFT, (b"bob", b"quit: bye")),
        (codec.encode_entered(NODE, "bob", "#rust"), codec.ENTERED, (b"bob", b"#rust")),
        (codec.encode_exited(NODE, "bob", "#rust", "part: x\x00y"), codec.EXITED, (b"bob", b"#rust", b"part: x\x00y")),
        (codec.encode_renamed(NODE, "bob", "rob"), codec.RENAMED, (b"bob", b"rob")),
        (codec.encode_private(NODE, "a", "b", "hi: there"), codec.PRIVATE, (b"a", b"b", b"hi: there")),
        (codec.encode_sync(NODE, ["a", "b", "c"]), codec.SYNC, (b"a", b"b", b"c")),
        (codec.encode_sync(NODE, [codec.entry("a", ["#lobby", "#x"])]), codec.SYNC, (b"a #lobby #x",)),
        (codec.encode_sync(NODE, []), codec.SYNC, ()),
    ]
    for data, kind, fields in cases:
        message = codec.decode(data)
        assert message.kind == kind
        assert message.node == NODE
        assert message.fields == fields


def test_private_text_keeps_separators_after_the_third_field() -> None:
    # The text is the last field: whatever it holds stays in it.
    message = codec.decode(codec.PRIVATE + NODE + b"a\x00b\x00one\x00two")
    assert message.fields == (b"a", b"b", b"one\x00two")


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", "too short"),
        (b"L0123", "too short"),
        (b"X" + NODE + b"body", "unknown message kind"),
        (codec.RENAMED + NODE + b"only-one", "needs 2 fields"),
        (codec.PRIVATE + NODE + b"a\x00b", "needs 3 fields"),
    ],
)
def test_bad_messages_are_refused_with_a_reason(data: bytes, error: str) -> None:
    with pytest.raises(codec.CodecError, match=error):
        codec.decode(data)


def test_an_entry_is_a_name_and_its_rooms() -> None:
    assert codec.parse_entry(codec.entry("zoë", ["#lobby", "#rust"])) == ("zoë", ["#lobby", "#rust"])
    assert codec.parse_entry(codec.entry("solo", [])) == ("solo", [])


def test_text_refuses_bad_utf8() -> None:
    with pytest.raises(codec.CodecError, match="UTF-8"):
        codec.text(b"\xff\xfe")


def test_node_ids_have_one_length() -> None:
    assert codec.check_node(NODE) == NODE
    with pytest.raises(codec.CodecError):
        codec.check_node(b"short")


def test_coalesce_joins_runs_of_own_lines_and_keeps_order() -> None:
    batch = [
        codec.encode_lines(NODE, b"1\n"),
        codec.encode_lines(NODE, b"2\n"),
        codec.encode_joined(NODE, "x"),
        codec.encode_lines(NODE, b"3\n"),
        codec.encode_lines(OTHER, b"reaped\n"),  # another node's lines are not merged into ours
        codec.encode_lines(NODE, b"4\n"),
    ]
    out = coalesce(batch, NODE)
    assert out == [
        codec.encode_lines(NODE, b"1\n2\n"),
        codec.encode_joined(NODE, "x"),
        codec.encode_lines(NODE, b"3\n"),
        codec.encode_lines(OTHER, b"reaped\n"),
        codec.encode_lines(NODE, b"4\n"),
    ]


def test_coalesce_caps_the_size_of_one_publish() -> None:
    line = b"x" * 999 + b"\n"
    batch = [codec.encode_lines(NODE, line)] * 1000  # ~1 MB
    out = coalesce(batch, NODE)
    assert len(out) > 1
    head = len(codec.LINES + NODE)
    assert all(len(m) - head <= PUBLISH_BATCH_BYTES for m in out)
    assert b"".join(m[head:] for m in out) == line * 1000


def test_the_directory_follows_members_and_their_rooms() -> None:
    d = Directory()
    d.add(NODE, "alice")
    d.add(OTHER, "bob", ["#lobby", "#rust"])
    assert d.enter(NODE, "alice", "#rust") and not d.enter(NODE, "alice", "#rust")  # once
    assert not d.enter(OTHER, "alice", "#go")  # not bob's node's to say
    assert sorted(d.room_names("#rust")) == ["alice", "bob"] and d.count("#rust") == 2
    assert d.rename(NODE, "alice", "alicia") == ["#lobby", "#rust"]
    assert d.find("ALICIA") == "alicia" and d.find("alice") is None
    assert d.exit(NODE, "alicia", "#rust") and not d.exit(NODE, "alicia", "#rust")
    assert d.room_counts() == {"#lobby": 2, "#rust": 1}
    assert d.remove(OTHER, "alicia") is None  # another node's member: untouched
    assert d.remove(NODE, "alicia") == ["#lobby"] and d.remove(NODE, "alicia") is None  # once
    d.replace_node(OTHER, {"carol": ["#go"]})
    assert d.names() == ["carol"] and d.room_counts() == {"#go": 1} and d.names_on(OTHER) == ["carol"]
