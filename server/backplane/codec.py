"""What nodes say to each other over the backplane's one Redis channel, sans-IO.

A message is ``KIND (1 byte) + NODE (12 bytes) + BODY``; ``NODE`` is the
node it speaks for, so a node skips its own messages with one slice.

``L`` lines      BODY is chat lines, encoded once by the sending node and
                 delivered as they are to every local member of every other node
                 (notices included: join, leave, rename, /me are lines too).
``J`` joined     BODY is a name now on NODE (directory only: the notice is a line).
``Q`` left       BODY is a name no longer on NODE (directory only).
``R`` renamed    BODY is ``OLD \\0 NEW``.
``P`` private    BODY is ``SENDER \\0 TO \\0 TEXT``: one /msg for a user on another node.
``S`` sync       BODY is every name on NODE, ``\\0``-separated: replaces what the
                 others know of NODE (sent when a node (re)joins the cluster).

Names and text never hold NUL (``protocol.validate_name`` and
``sanitize_text`` drop control characters), so NUL separates fields.
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
RENAMED = b"R"
PRIVATE = b"P"
SYNC = b"S"
KINDS = frozenset((LINES, JOINED, LEFT, RENAMED, PRIVATE, SYNC))


class CodecError(ValueError):
    """A backplane message this node cannot read (logged and skipped)."""


@dataclass(frozen=True, slots=True)
class Message:
    kind: bytes
    node: bytes
    #: The fields of the body: one for L/J/Q, two for R, three for P, any for S.
    fields: tuple[bytes, ...]


def check_node(node: bytes) -> bytes:
    if len(node) != NODE_ID_BYTES:
        raise CodecError(f"node id must be {NODE_ID_BYTES} bytes, got {len(node)}")
    return node


def encode_lines(node: bytes, lines: bytes) -> bytes:
    return LINES + node + lines


def encode_joined(node: bytes, name: str) -> bytes:
    return JOINED + node + name.encode()


def encode_left(node: bytes, name: str) -> bytes:
    return LEFT + node + name.encode()


def encode_renamed(node: bytes, old: str, new: str) -> bytes:
    return RENAMED + node + old.encode() + SEP + new.encode()


def encode_private(node: bytes, sender: str, to: str, text: str) -> bytes:
    return PRIVATE + node + SEP.join((sender.encode(), to.encode(), text.encode()))


def encode_sync(node: bytes, names: list[str]) -> bytes:
    return SYNC + node + SEP.join(n.encode() for n in names)


#: Fields each kind's body splits into (None: any number, S).
FIELD_COUNTS: dict[bytes, int | None] = {LINES: 1, JOINED: 1, LEFT: 1, RENAMED: 2, PRIVATE: 3, SYNC: None}


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
