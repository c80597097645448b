"""Who is on the other nodes, and in which rooms: this node's copy of the
cluster's roster.

Filled from the backplane's J/Q/I/O/R/S messages and from a snapshot of Redis
each time the node (re)joins; read by ``/who``, ``/who #ROOM``, ``/rooms``,
the welcome line, ``/msg`` and the announce limit without a Redis round trip.
Every node hears the same messages from a node in the same order, so every
node's copy says the same about it.  Its lock is never held while calling out.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from server import protocol


@dataclass(slots=True)
class Member:
    node: bytes
    name: str
    #: Its rooms, in the order it joined them.
    rooms: dict[str, None] = field(default_factory=dict)


class Directory:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: name key -> every member of every other node.
        self._by_key: dict[str, Member] = {}
        #: room -> the name keys of its members on other nodes.
        self._rooms: dict[str, set[str]] = {}

    # -- changes (caller: the subscriber thread) -------------------------------

    def add(self, node: bytes, name: str, rooms: Iterable[str] = (protocol.DEFAULT_ROOM,)) -> None:
        key = protocol.name_key(name)
        with self._lock:
            self._drop(key)
            self._by_key[key] = Member(node, name, dict.fromkeys(rooms))
            for room in rooms:
                self._rooms.setdefault(room, set()).add(key)

    def remove(self, node: bytes, name: str) -> list[str] | None:
        """``name`` of ``node`` left: the rooms it was in, or None if this
        directory did not list it there (so nobody here was told it came)."""
        key = protocol.name_key(name)
        with self._lock:
            member = self._by_key.get(key)
            if member is None or member.node != node:
                return None
            self._drop(key)
            return list(member.rooms)

    def enter(self, node: bytes, name: str, room: str) -> bool:
        """``name`` joined ``room``; False if it is unknown or already there."""
        key = protocol.name_key(name)
        with self._lock:
            member = self._by_key.get(key)
            if member is None or member.node != node or room in member.rooms:
                return False
            member.rooms[room] = None
            self._rooms.setdefault(room, set()).add(key)
            return True

    def exit(self, node: bytes, name: str, room: str) -> bool:
        """``name`` parted ``room``; False if it is unknown or was not there."""
        key = protocol.name_key(name)
        with self._lock:
            member = self._by_key.get(key)
            if member is None or member.node != node or room not in member.rooms:
                return False
            del member.rooms[room]
            self._leave_room(room, key)
            return True

    def rename(self, node: bytes, old: str, new: str) -> list[str]:
        """``old`` is ``new`` now; the rooms it is in (an unknown ``old`` is
        taken as having just joined)."""
        old_key, new_key = protocol.name_key(old), protocol.name_key(new)
        with self._lock:
            member = self._by_key.get(old_key)
            if member is None or member.node != node:
                member = Member(node, new, {protocol.DEFAULT_ROOM: None})
            else:
                self._drop(old_key)  # its rooms stay in member.rooms
                member.name = new
            self._drop(new_key)
            self._by_key[new_key] = member
            for room in member.rooms:
                self._rooms.setdefault(room, set()).add(new_key)
            return list(member.rooms)

    def replace_node(self, node: bytes, members: dict[str, list[str]]) -> None:
        """``node`` has exactly ``members`` (name -> rooms) now."""
        with self._lock:
            for key in [k for k, m in self._by_key.items() if m.node == node]:
                self._drop(key)
        for name, rooms in members.items():
            self.add(node, name, rooms)

    def replace_all(self, members: dict[bytes, dict[str, list[str]]]) -> None:
        """The whole roster of the other nodes, from a snapshot."""
        with self._lock:
            self._by_key = {}
            self._rooms = {}
        for node, names in members.items():
            for name, rooms in names.items():
                self.add(node, name, rooms)

    def _drop(self, key: str) -> None:
        """Forget ``key`` everywhere (caller holds the lock)."""
        member = self._by_key.pop(key, None)
        if member is not None:
            for room in member.rooms:
                self._leave_room(room, key)

    def _leave_room(self, room: str, key: str) -> None:
        keys = self._rooms.get(room)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._rooms[room]

    # -- queries (any thread) ------------------------------------------------------

    def find(self, name: str) -> str | None:
        """The name as its owner spelled it, if someone on another node has it."""
        member = self._by_key.get(protocol.name_key(name))
        return None if member is None else member.name

    def names(self) -> list[str]:
        with self._lock:
            return [m.name for m in self._by_key.values()]

    def names_on(self, node: bytes) -> list[str]:
        with self._lock:
            return [m.name for m in self._by_key.values() if m.node == node]

    def room_names(self, room: str) -> list[str]:
        """The members of ``room`` on other nodes."""
        with self._lock:
            return [self._by_key[k].name for k in self._rooms.get(room, ())]

    def count(self, room: str) -> int:
        """How many members ``room`` has on other nodes."""
        keys = self._rooms.get(room)
        return 0 if keys is None else len(keys)

    def room_counts(self) -> dict[str, int]:
        with self._lock:
            return {room: len(keys) for room, keys in self._rooms.items()}

    def __len__(self) -> int:
        return len(self._by_key)
