"""One room's members, and what the hub refuses about rooms.

A :class:`Room` is what a broadcast is handed: its ``targets``, an immutable
snapshot of (member, outbox) pairs replaced under the hub's lock on every
join and part, so broadcasting takes no lock (the same snapshot the one-room
server had; the ``queued`` flusher groups lines by it).  The hub owns every
room (``server.hub``); this module only holds the type.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

from server import protocol

if TYPE_CHECKING:
    from server.fanout.base import Outbox
    from server.session import Session

#: A room's snapshot: (member, outbox) pairs, what a broadcast is handed.
Members = tuple[tuple["Session", "Outbox"], ...]
#: One join or part, as a snapshot remembers it: (member, its (member, outbox)
#: pair) for a join, (member, None) for a part.
Change = tuple["Session", "tuple[Session, Outbox] | None"]


class Snapshot(tuple[tuple["Session", "Outbox"], ...]):
    """A room's members at one moment, what :attr:`Room.targets` holds.
    ``origin`` is the room: the ``queued`` flusher joins consecutive lines of
    one room into one send per member even when people joined or left
    between them (each join and part makes a new snapshot).  ``version`` and
    ``change`` let it tell who came and went from the snapshots alone: a
    snapshot one version after another differs from it by ``change``
    (:func:`server.fanout.runs.mixed_audience`), so a round of 500 joins in a
    room of 1,000 costs the joins, not 500 copies of the room."""

    origin: Room
    #: The room's count of snapshots before this one.
    version: int
    #: What makes it differ from the room's previous snapshot (None: not said).
    change: Change | None


#: Told to a client that sends chat (or /me) while it is in no room.
NO_ROOM_ERROR = "You are in no room; /join #ROOM to talk"


def part_reason(reason: str) -> str:
    """What a part's notice says in parentheses: ``part`` or ``part: REASON``."""
    return f"part: {reason}" if reason else "part"


class RoomError(Exception):
    """A room command that cannot be done: the message is the client's one
    error line (``! MESSAGE``); the session goes on."""


class Room:
    __slots__ = ("default", "members", "name", "published", "targets")

    def __init__(self, name: str) -> None:
        #: Its one spelling (``protocol.validate_room``).
        self.name = name
        #: The default room's lines keep the one-room formats (``alice: hi``).
        self.default = name == protocol.DEFAULT_ROOM
        #: Member -> its (member, outbox) pair, in join order; the source of
        #: ``targets``.  The pair is made once, at the join: a snapshot made
        #: on every join and part reuses the pairs instead of allocating one
        #: per member each time (under churn, a million tuples a second for
        #: the garbage collector to count and traverse).
        self.members: dict[Session, tuple[Session, Outbox]] = {}
        #: Snapshot of ``members`` as (member, outbox) pairs: what broadcasts read.
        self.targets: Members = ()
        #: Snapshots made so far: the next one's ``version``.
        self.published = 0

    def add(self, session: Session) -> Callable[[], None]:
        """Make ``session`` a member (the hub's lock is held).  Returns the
        publish that shows it to broadcasts, saying who came, for its
        outbox's ``admit`` to call once its first line is queued."""
        pair = self.members[session] = (session, session.outbox)
        return functools.partial(self.publish, (session, pair))

    def remove(self, session: Session) -> None:
        """``session`` is no longer a member (the hub's lock is held); the
        new snapshot says who went."""
        del self.members[session]
        self.publish((session, None))

    def publish(self, change: Change | None = None) -> None:
        """Rebuild the snapshot (the hub's lock is held) after ``change`` (the
        one join or part since the last one, None if not one); C-speed copies
        only, so a join in a room of 10,000 stays cheap."""
        snapshot = Snapshot(self.members.values())
        snapshot.origin = self
        snapshot.version = self.published
        snapshot.change = change
        self.published += 1
        self.targets = snapshot

    def message(self, sender: str, text: str) -> bytes:
        """``sender`` says ``text`` here, encoded once for every member."""
        if self.default:
            return protocol.encode_message(sender, text)
        return protocol.encode_room_message(self.name, sender, text)

    def action(self, sender: str, action: str) -> bytes:
        if self.default:
            return protocol.encode_action(sender, action)
        return protocol.encode_room_action(self.name, sender, action)

    def __repr__(self) -> str:
        return f"Room({self.name!r}, {len(self.targets)} members)"
