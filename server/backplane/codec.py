"""What nodes say to each other over the backplane's Redis channels, sans-IO.

A message is ``KIND (1 byte) + NODE (12 bytes) + BODY``; ``NODE`` is the
node it speaks for, so a node skips its own messages with one slice.

Lines go on the channel of their room; everything else on the control
channel, which every node hears:

``L`` lines      (room channel) BODY is chat lines of that room (messages,
                 /me), encoded once by the sending node and delivered as they
                 are to every local member of the room on every other node.
``J`` joined     NAME is on NODE now, in the default room.
``Q`` left       ``NAME \\0 REASON``: NAME left the chat (every room at once).
``I`` in         ``NAME \\0 ROOM``: NAME joined ROOM.
``O`` out        ``NAME \\0 ROOM \\0 REASON``: NAME parted ROOM.
``R`` renamed    ``OLD \\0 NEW``.
``P`` private    ``SENDER \\0 TO \\0 TEXT``: one /msg for a user on another node.
``S`` sync       every member of NODE as an entry ``NAME ROOM ROOM ...``,
                 ``\\0``-separated: replaces what the others know of NODE (sent
                 when a node (re)joins the cluster).

A membership message (J, Q, I, O, R) is also the notice: each node that
hears it tells its own members who share the room (one message, so a node
dying between a membership change and its notice cannot leave the two apart).

Names and text never hold NUL (``protocol.validate_name`` and
``sanitize_text`` drop control characters), so NUL separates fields; names
and room names hold no spaces, so a space separates an entry's parts.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Length of a node id: 12 hex digits (48 random bits; a cluster has a few dozen nodes).
NODE_ID_BYTES = 12
#: Separates the fields of a body.
SEP = b"\x00"

LINES = b"L"
JOINED = b"J"
LEFT = b"Q"
ENTERED = b"I"
EXITED = b"O"
RENAMED = b"R"
PRIVATE = b"P"
SYNC = b"S"
KINDS = frozenset((LINES, JOINED, LEFT, ENTERED, EXITED, RENAMED, PRIVATE, SYNC))


class CodecError(ValueError):
    """A backplane message this node cannot read (logged and skipped)."""


@dataclass(frozen=True, slots=True)
class Message:
    kind: bytes
    node: bytes
    #: The fields of the body: one for L/J, two for Q/I/R, three for O/P, any for S.
    fields: tuple[bytes, ...]


def check_node(node: bytes) -> bytes:
    if len(node) != NODE_ID_BYTES:
        raise CodecError(f"node id must be {NODE_ID_BYTES} bytes, got {len(node)}")
    return node


def encode_lines(node: bytes, lines: bytes) -> bytes:
    return LINES + node + lines


def encode_joined(node: bytes, name: str) -> bytes:
    return JOINED + node + name.encode()


def encode_left(node: bytes, name: str, reason: str) -> bytes:
    return LEFT + node + name.encode() + SEP + reason.encode()


def encode_entered(node: bytes, name: str, room: str) -> bytes:
    return ENTERED + node + name.encode() + SEP + room.encode()


def encode_exited(node: bytes, name: str, room: str, reason: str) -> bytes:
    return EXITED + node + SEP.join((name.encode(), room.encode(), reason.encode()))


def encode_renamed(node: bytes, old: str, new: str) -> bytes:
    return RENAMED + node + old.encode() + SEP + new.encode()


def encode_private(node: bytes, sender: str, to: str, text: str) -> bytes:
    return PRIVATE + node + SEP.join((sender.encode(), to.encode(), text.encode()))


def encode_sync(node: bytes, entries: list[str]) -> bytes:
    """``entries`` from :func:`entry`."""
    return SYNC + node + SEP.join(e.encode() for e in entries)


def entry(name: str, rooms: list[str]) -> str:
    """One member and its rooms, as S messages and Redis keep them."""
    return " ".join((name, *rooms))


def parse_entry(text: str) -> tuple[str, list[str]]:
    name, *rooms = text.split(" ")
    return name, rooms


#: Fields each kind's body splits into (None: any number, S).
FIELD_COUNTS: dict[bytes, int | None] = {
    LINES: 1,
    JOINED: 1,
    LEFT: 2,
    ENTERED: 2,
    EXITED: 3,
    RENAMED: 2,
    PRIVATE: 3,
    SYNC: None,
}


def decode(data: bytes) -> Message:
    """Parse one message; CodecError if it is not one."""
    if len(data) < 1 + NODE_ID_BYTES:
        raise CodecError(f"message too short ({len(data)} bytes)")
    kind = data[:1]
    count = FIELD_COUNTS.get(kind, 0)
    if count == 0:
        raise CodecError(f"unknown message kind {kind!r}")
    node, body = data[1 : 1 + NODE_ID_BYTES], data[1 + NODE_ID_BYTES :]
    if count == 1:
        return Message(kind, node, (body,))
    if count is None:
        return Message(kind, node, tuple(body.split(SEP)) if body else ())
    fields = tuple(body.split(SEP, count - 1))
    if len(fields) != count:
        raise CodecError(f"{kind.decode()} message needs {count} fields, got {len(fields)}")
    return Message(kind, node, fields)


def text(field: bytes) -> str:
    """A name or text field as str; CodecError if it is not UTF-8."""
    try:
        return field.decode()
    except UnicodeDecodeError as exc:
        raise CodecError(f"field is not UTF-8: {exc}") from exc
