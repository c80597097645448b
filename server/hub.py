"""Who is in the chat and in which rooms, under one lock, and broadcast.

Every registered client is in the default room (``#lobby``) first; it may
join and part other rooms (``/join``, ``/part``).  Each :class:`Room` keeps
an immutable tuple of its members that is replaced (under the lock) on every
join and part, so the hot path takes no lock of its own: it encodes a line
once and hands the same bytes and the room's snapshot either to the fan-out
strategy in one call (``fan_out``: the ``queued`` flusher) or to every
recipient's outbox.  With one room this is exactly the one-room server.

A notice about a person rather than a room (left the chat, renamed) goes to
everyone who shares a room with them, once each, however many rooms they
share (as IRC sends one QUIT per user): the union of those rooms' snapshots.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from server import protocol
from server.config import DEFAULT_ANNOUNCE_LIMIT, DEFAULT_MAX_ROOMS, DEFAULT_MAX_ROOMS_PER_CLIENT
from server.rooms import Room, RoomError, part_reason

if TYPE_CHECKING:
    from server.fanout.base import FanOutHook, Outbox
    from server.rooms import Members
    from server.session import Session


#: Up to this many members the welcome lists every name, sorted.
WELCOME_SORTED_UP_TO = 256


class NameTaken(Exception):
    pass


def roster(names: Iterable[str], count: int) -> tuple[list[str], int]:
    """Names for a listing line and how many there are: all of them, sorted,
    when few; the first WELCOME_SORTED_UP_TO otherwise, where sorting every
    name for every arrival would cost O(N^2 log N)."""
    if count <= WELCOME_SORTED_UP_TO:
        return sorted(names, key=str.casefold), count
    return list(itertools.islice(names, WELCOME_SORTED_UP_TO)), count


class Hub:
    def __init__(
        self,
        announce_limit: int = DEFAULT_ANNOUNCE_LIMIT,
        max_rooms: int = DEFAULT_MAX_ROOMS,
        max_rooms_per_client: int = DEFAULT_MAX_ROOMS_PER_CLIENT,
    ) -> None:
        #: Join/leave notices only while a room has at most this many members.
        self.announce_limit = announce_limit
        #: Rooms that may exist at once (the default room counts).
        self.max_rooms = max_rooms
        #: Rooms one client may be in at once (the default room counts).
        self.max_rooms_per_client = max_rooms_per_client
        self._lock = threading.Lock()
        self._by_key: dict[str, Session] = {}
        #: Member -> its current name.  The hub owns the names: a session
        #: learns its own from ``join``/``rename`` returning, and the welcome,
        #: /who and leave notices read them here.
        self._name_of: dict[Session, str] = {}
        #: Member -> its outbox, in join order.
        self._outbox_of: dict[Session, Outbox] = {}
        #: The default room: every client is in it after registration.
        self.lobby = Room(protocol.DEFAULT_ROOM)
        #: Room name -> room, for every room with a member here (and the lobby).
        self._rooms: dict[str, Room] = {self.lobby.name: self.lobby}
        #: Member -> its rooms by name, in the order it joined (or last
        #: switched to) them: the last one is its current room.
        self._rooms_of: dict[Session, dict[str, Room]] = {}
        #: Hands a whole broadcast to the fan-out strategy in one call
        #: (``Flusher.broadcast``); None: the hub calls each outbox's ``send``.
        self.fan_out: FanOutHook | None = None
        #: Set when the server shuts down: leaves are then silent, because
        #: N clients each telling N-1 others that they left is O(N^2) work
        #: for notices nobody will read.
        self.closing = False

    # -- registration -----------------------------------------------------

    def join(self, session: Session, name: str) -> None:
        """Register ``session`` as ``name``, in the default room; it gets the
        welcome line before any other line can reach it, then the room sees
        the join notice.  The session takes ``name`` as its own once this
        returns (and the lobby as its current room)."""
        key = protocol.name_key(name)
        lobby = self.lobby
        with self._lock:
            if key in self._by_key:
                raise NameTaken(name)
            self._name_of[session] = name
            self._by_key[key] = session
            self._outbox_of[session] = session.outbox
            self._rooms_of[session] = {lobby.name: lobby}
            publish = lobby.add(session)
            welcome = protocol.encode_welcome(name, *self.welcome_roster())
            # The welcome must be the first line it gets, yet it must already be
            # a member when it reads the welcome (and anyone reacts to it).
            session.outbox.admit(welcome, publish)
            # Sized and read under the lock: a part or join racing this one must
            # change neither the verdict nor who hears it (the room as this join left it).
            announce = self.room_size(lobby) <= self.announce_limit
            targets = lobby.targets
        if announce:
            self.notify(targets, protocol.encode_joined(name), exclude=session)

    def welcome_roster(self) -> tuple[list[str], int]:
        """Names for a welcome line and how many are online (caller holds the
        lock).  A cluster's hub adds the other nodes' members."""
        name_of = self._name_of
        return roster((name_of[s] for s in self._by_key.values()), len(self._by_key))

    def leave(self, session: Session, reason: str) -> bool:
        """Remove ``session`` from the chat and every room; True the first (and
        only) time it was a member.  Everyone sharing a room with it is told
        once, in rooms of at most ``announce_limit`` members."""
        if session not in self._name_of:  # never joined: no lock needed
            return False
        with self._lock:
            name = self._name_of.pop(session, None)
            if name is None:
                return False
            del self._by_key[protocol.name_key(name)]
            del self._outbox_of[session]
            rooms = list(self._rooms_of.pop(session).values())
            for room in rooms:
                self._remove_member(room, session)
            told = self.audience([r for r in rooms if self.room_size(r) < self.announce_limit])
        if not self.closing:
            self.notify(told, protocol.encode_left(name, reason))
        return True

    def rename(self, session: Session, new_name: str) -> str:
        """Rename ``session``; returns the old name.  Everyone sharing a room
        with it, and the renamed client itself, sees the notice once.  The
        session takes ``new_name`` as its own once this returns."""
        new_key = protocol.name_key(new_name)
        with self._lock:
            old = self._name_of[session]
            old_key = protocol.name_key(old)
            holder = self._by_key.get(new_key)
            if holder is not None and holder is not session:
                raise NameTaken(new_name)
            del self._by_key[old_key]
            self._by_key[new_key] = session
            self._name_of[session] = new_name
            rooms = list(self._rooms_of[session].values())
        self.notify(self.audience(rooms, session), protocol.encode_renamed(old, new_name))
        return old

    # -- rooms ---------------------------------------------------------------

    def join_room(self, session: Session, name: str) -> Room:
        """Put ``session`` in room ``name`` (created if need be) and make it its
        current room; the session is told who is there (first), the room's
        others see the join notice.  Joining a room it is in only makes it
        current.  RoomError past a limit."""
        with self._lock:
            mine = self._rooms_of[session]
            room = mine.pop(name, None)
            if room is not None:  # already in it: it only becomes the current room
                mine[name] = room
        if room is not None:
            session.send(protocol.encode_talking(name, *self.room_roster(room)))
            return room
        with self._lock:
            if len(mine) >= self.max_rooms_per_client:
                raise RoomError(
                    f"Cannot join {name}: you are in {len(mine)} rooms, the most one client may be in; /part one first"
                )
            room = self._rooms.get(name)
            if room is None:
                if self.room_count() >= self.max_rooms:
                    raise RoomError(f"Cannot join {name}: the server has {self.max_rooms} rooms, its limit")
                room = self._rooms[name] = Room(name)
            mine[name] = room
            publish = room.add(session)
            # Who is there, before any line of the room can reach it.
            talking = protocol.encode_talking(name, *self.room_roster(room, room.members))
            session.outbox.admit(talking, publish)
            member_name = self._name_of[session]
            announce = self.room_size(room) <= self.announce_limit
            targets = room.targets
        if announce:
            self.notify(targets, protocol.encode_room_joined(member_name, name), exclude=session)
        return room

    def part_room(self, session: Session, name: str, reason: str = "") -> tuple[Room | None, bool]:
        """Take ``session`` out of room ``name``: (its current room now, whether
        that changed).  It and the room's members see the notice; if it parted
        its current room it is told which room is current now (the one it
        joined before), or that it is in none.  RoomError if not in the room."""
        with self._lock:
            mine = self._rooms_of[session]
            if name not in mine:
                raise RoomError(f"You are not in {name}")
            was_current = next(reversed(mine)) == name
            room = mine.pop(name)
            current = mine[next(reversed(mine))] if mine else None
            self._remove_member(room, session)
            member_name = self._name_of[session]
            announce = self.room_size(room) < self.announce_limit
            targets = room.targets
        line = protocol.encode_room_left(member_name, name, part_reason(reason))
        session.send(line)
        if announce:
            self.notify(targets, line)
        if was_current:
            if current is None:
                session.send(protocol.encode_no_room())
            else:
                session.send(protocol.encode_talking(current.name, *self.room_roster(current)))
        return current, was_current

    def _remove_member(self, room: Room, session: Session) -> None:
        """Take ``session`` out of ``room``'s snapshot (caller holds the lock);
        an empty room other than the lobby is gone."""
        room.remove(session)
        if not room.members and room is not self.lobby:
            del self._rooms[room.name]

    # -- queries ------------------------------------------------------------

    def find(self, name: str) -> Session | None:
        return self._by_key.get(protocol.name_key(name))

    def name_of(self, session: Session) -> str | None:
        """``session``'s name while it is a member, else None."""
        return self._name_of.get(session)

    def names(self) -> list[str]:
        """Every member's name, sorted."""
        with self._lock:
            names = list(self._name_of.values())
        return sorted(names, key=str.casefold)

    def member_room(self, session: Session, name: str) -> Room | None:
        """Room ``name`` if ``session`` is in it (read by its own thread, the
        only one that changes its rooms: no lock)."""
        mine = self._rooms_of.get(session)
        return None if mine is None else mine.get(name)

    def room_names_of(self, session: Session) -> list[str]:
        """The rooms ``session`` is in, the current one last."""
        return list(self._rooms_of.get(session, ()))

    def room_roster(self, room: Room, members: Iterable[Session] | None = None) -> tuple[list[str], int]:
        """Names for a room's listing and how many are in it: its snapshot's,
        or ``members`` (read under the lock).  A cluster's hub adds the other
        nodes' members."""
        name_of = self._name_of
        members = (s for s, _ in room.targets) if members is None else members
        names = [n for s in members if (n := name_of.get(s))]
        return roster(names, len(names))

    def room_members(self, name: str) -> tuple[list[str], int] | None:
        """``/who #ROOM``: the room's roster, or None if there is no such room."""
        room = self._rooms.get(name)  # only the lobby is ever empty
        return None if room is None else self.room_roster(room)

    def room_size(self, room: Room) -> int:
        """Members of ``room`` (a cluster's hub counts every node's)."""
        return len(room.targets)

    def room_count(self) -> int:
        """Rooms that exist (a cluster's hub counts every node's)."""
        return len(self._rooms)

    def room_list(self) -> list[tuple[str, int]]:
        """``/rooms``: every room and its member count, the biggest first."""
        with self._lock:
            rooms = list(self._rooms.values())
        return sorted(((r.name, self.room_size(r)) for r in rooms), key=lambda item: (-item[1], item[0]))

    def send_private(self, sender: str, to: str, text: str) -> str | None:
        """Deliver a /msg from ``sender`` to ``to``; the recipient's name as it
        spells it, or None if nobody has that name."""
        target = self.find(to)
        target_name = None if target is None else self.name_of(target)
        if target is None or target_name is None:
            return None
        target.send(protocol.encode_private(sender, text))
        return target_name

    def __len__(self) -> int:
        return len(self._name_of)

    # -- fan-out --------------------------------------------------------------

    def broadcast(self, data: bytes, exclude: Session | None = None, room: Room | None = None) -> None:
        """A line said in ``room`` (the default room when None): to its members
        but ``exclude``.  A cluster's hub also sends it to the other nodes."""
        self.notify((self.lobby if room is None else room).targets, data, exclude)

    def notify(self, targets: Members, data: bytes, exclude: Session | None = None) -> None:
        """``data`` to ``targets`` but ``exclude``, on this node only."""
        if self.fan_out is not None:
            if not self.closing and targets:
                self.fan_out(targets, data, exclude)
            return
        for member, outbox in targets:
            if member is not exclude:
                outbox.send(data)
            if self.closing:
                # Shutting down: stop fanning out, so busy threads get out of
                # the way of the one saying goodbye to everyone.
                return

    def notify_everyone(self, data: bytes) -> None:
        """``data`` to every client here, whatever its rooms (cluster notices)."""
        with self._lock:
            outboxes = list(self._outbox_of.values())
        for outbox in outboxes:
            outbox.send(data)

    def audience(self, rooms: list[Room], also: Session | None = None) -> Members:
        """Everyone in any of ``rooms`` (and ``also``), once each.  One room's
        own snapshot when that is all it is, so the flusher joins the line
        with that room's other lines."""
        if len(rooms) == 1 and (also is None or also in rooms[0].members):
            return rooms[0].targets
        union: dict[Session, Outbox] = {}
        for room in rooms:
            union.update(room.targets)
        if also is not None:
            union[also] = also.outbox
        return tuple(union.items())
