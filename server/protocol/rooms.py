"""Room names, sans-IO: which room names are valid and their one spelling.

A room name is ``#`` and 1 to :data:`MAX_ROOM_CHARS` characters from
:data:`ROOM_CHARS` (ASCII letters, digits, ``-``, ``_``, ``.``), case-insensitive:
``#Rust`` and ``#rust`` are one room, always shown as ``#rust``.  Usernames can
never start with ``#`` (``names.RESERVED_FIRST``), so a server line that starts
with ``#`` is always a room's line.
"""

from __future__ import annotations

import string

from server.protocol.framing import ProtocolError

#: Every room name starts with this, as IRC channels do.
ROOM_PREFIX = "#"

#: The room every client is in after registration.  Its lines look as they
#: did before there were rooms (``alice: hi``, ``*** alice joined the chat``),
#: so clients that never use rooms see one room, as always.  It is never
#: removed, even when empty.
DEFAULT_ROOM = "#lobby"

#: Longest room name, in characters after the ``#``.  Like a username, short
#: enough to stay a readable prefix; with ASCII only, a room line is at most
#: 34 bytes longer than the same line in the default room, which keeps every
#: server line within ``SERVER_LINE_OVERHEAD`` of the client line limit.
MAX_ROOM_CHARS = 32

#: Characters of a room name after the ``#``.  ASCII only, lower case: one
#: spelling per room (no look-alike Unicode rooms), safe as a Redis channel
#: name in a cluster, and cheap to check.  Upper case is folded to lower case.
ROOM_CHARS = frozenset(string.ascii_lowercase + string.digits + "-_.")


def validate_room(raw: str) -> str:
    """The room's one spelling (lower case), or :class:`ProtocolError`
    saying what is wrong with ``raw``."""
    room = raw.strip().lower()
    if not room.startswith(ROOM_PREFIX):
        raise ProtocolError(f"Invalid room name {raw.strip()[:40]!r}: a room name starts with {ROOM_PREFIX!r}")
    body = room[len(ROOM_PREFIX) :]
    if not body:
        raise ProtocolError(f"Invalid room name {raw.strip()!r}: it needs a name after {ROOM_PREFIX!r}")
    if len(body) > MAX_ROOM_CHARS:
        raise ProtocolError(f"Invalid room name: longer than {MAX_ROOM_CHARS} characters after {ROOM_PREFIX!r}")
    bad = sorted(set(body) - ROOM_CHARS)
    if bad:
        raise ProtocolError(
            f"Invalid room name {raw.strip()[:40]!r}: only letters a-z, digits, '-', '_' and '.' "
            f"(not {''.join(bad)[:10]!r})"
        )
    return room
