"""The hub of a node in a cluster: the local :class:`~server.hub.Hub`, plus
the backplane.

Everything the local hub does still happens locally, at once; on top of it
every line said in a room is also offered to the publisher for the room's
channel (the other nodes with members in the room deliver it to them), every
change of membership (joined, left, joined or parted a room, renamed) is
offered on the control channel (each other node tells its own members who
share a room with that person), names are claimed in Redis before they are
taken locally, and ``/who``, ``/rooms``, the welcome line and ``/msg`` see the
other nodes' members through the link's directory.  What the other nodes
publish comes in through the ``deliver*`` and ``on_*`` methods, which reach
local members only.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from server import protocol
from server.backplane import codec
from server.backplane.link import Link
from server.config import DEFAULT_ANNOUNCE_LIMIT, DEFAULT_MAX_ROOMS, DEFAULT_MAX_ROOMS_PER_CLIENT
from server.hub import WELCOME_SORTED_UP_TO, Hub, NameTaken, roster
from server.rooms import Room, part_reason

if TYPE_CHECKING:
    from server.session import Session


class ClusterHub(Hub):
    def __init__(
        self,
        url: str,
        announce_limit: int = DEFAULT_ANNOUNCE_LIMIT,
        max_rooms: int = DEFAULT_MAX_ROOMS,
        max_rooms_per_client: int = DEFAULT_MAX_ROOMS_PER_CLIENT,
    ) -> None:
        super().__init__(announce_limit, max_rooms, max_rooms_per_client)
        self.link = Link(url, self)
        self.directory = self.link.directory
        self._node = self.link.node
        self._offer = self.link.offer
        #: Held from a name's claim in Redis to its local join, so two local
        #: sessions asking for one name cannot release each other's claim.
        self._claims = threading.Lock()

    def start(self) -> None:
        """Join the cluster (BackplaneError if Redis cannot be reached)."""
        self.link.start()

    def stop(self, reason: str) -> None:
        """Leave the cluster; the other nodes hear that our users left."""
        self.link.stop(list(self.local_entries()), reason)

    # -- membership ---------------------------------------------------------------

    def join(self, session: Session, name: str) -> None:
        self.link.occupy(self.lobby.name)  # subscribed before anyone can see us
        try:
            with self._claims:
                if self.find(name) is not None or not self.link.claim(name):
                    raise NameTaken(name)
                try:
                    super().join(session, name)
                except BaseException:
                    self.link.release(name)
                    raise
        except BaseException:
            self.link.vacate(self.lobby.name)
            raise
        self._offer(codec.encode_joined(self._node, name))

    def leave(self, session: Session, reason: str) -> bool:
        name = self.name_of(session)
        rooms = self.room_names_of(session)
        if not super().leave(session, reason) or name is None:
            return False
        if not self.closing:  # at shutdown ``stop`` says it for everyone at once
            self._offer(codec.encode_left(self._node, name, reason))
            self.link.release(name)
        for room in rooms:
            self.link.vacate(room)
        return True

    def rename(self, session: Session, new_name: str) -> str:
        with self._claims:
            current = self.name_of(session)
            same = current is not None and protocol.name_key(current) == protocol.name_key(new_name)
            if not same and (self.find(new_name) is not None or not self.link.claim(new_name)):
                raise NameTaken(new_name)
            old = super().rename(session, new_name)
        if not same:
            self.link.release(old)
        self._offer(codec.encode_renamed(self._node, old, new_name))
        return old

    def join_room(self, session: Session, name: str) -> Room:
        new = self.member_room(session, name) is None
        if new:
            self.link.occupy(name)
        try:
            room = super().join_room(session, name)
        except BaseException:
            if new:
                self.link.vacate(name)
            raise
        member = self.name_of(session)
        if new and member is not None:
            self._offer(codec.encode_entered(self._node, member, name))
        return room

    def part_room(self, session: Session, name: str, reason: str = "") -> tuple[Room | None, bool]:
        result = super().part_room(session, name, reason)
        member = self.name_of(session)
        if member is not None:
            self._offer(codec.encode_exited(self._node, member, name, part_reason(reason)))
        self.link.vacate(name)
        return result

    # -- queries ------------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(super().names() + self.directory.names(), key=str.casefold)

    def welcome_roster(self) -> tuple[list[str], int]:
        local, count = super().welcome_roster()
        remote = self.directory.names()
        names = local + remote
        if len(names) <= WELCOME_SORTED_UP_TO:
            names.sort(key=str.casefold)
        return names[:WELCOME_SORTED_UP_TO], count + len(remote)

    def room_roster(self, room: Room, members: Iterable[Session] | None = None) -> tuple[list[str], int]:
        local, count = super().room_roster(room, members)
        remote = self.directory.room_names(room.name)
        return roster(local + remote, count + len(remote))

    def room_members(self, name: str) -> tuple[list[str], int] | None:
        local = self._rooms.get(name)
        if local is not None:
            return self.room_roster(local)  # with the other nodes' members
        remote = self.directory.room_names(name)
        return roster(remote, len(remote)) if remote else None

    def room_size(self, room: Room) -> int:
        return super().room_size(room) + self.directory.count(room.name)

    def room_count(self) -> int:
        return len(set(self._rooms) | set(self.directory.room_counts()))

    def room_list(self) -> list[tuple[str, int]]:
        counts = self.directory.room_counts()
        with self._lock:
            local = [(name, len(room.targets)) for name, room in self._rooms.items()]
        for name, count in local:
            counts[name] = counts.get(name, 0) + count
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))

    def send_private(self, sender: str, to: str, text: str) -> str | None:
        local = super().send_private(sender, to, text)
        if local is not None:
            return local
        remote = self.directory.find(to)
        if remote is not None:
            self._offer(codec.encode_private(self._node, sender, remote, text))
        return remote

    def local_entries(self) -> dict[str, str]:
        """Every local member's name -> its entry (name and rooms)."""
        with self._lock:
            members = [(name, list(self._rooms_of.get(s, ()))) for s, name in self._name_of.items()]
        return {name: codec.entry(name, rooms) for name, rooms in members}

    # -- fan-out ----------------------------------------------------------------------

    def broadcast(self, data: bytes, exclude: Session | None = None, room: Room | None = None) -> None:
        super().broadcast(data, exclude, room)
        if not self.closing:
            self._offer(codec.encode_lines(self._node, data), (self.lobby if room is None else room).name)

    # -- what the link calls (server.backplane.link.LocalHub) ---------------------------

    def deliver(self, room: str, lines: bytes) -> None:
        """Lines said in ``room`` on another node: to its local members."""
        local = self._rooms.get(room)
        if local is not None:
            self.notify(local.targets, lines)

    def deliver_private(self, sender: str, to: str, text: str) -> None:
        super().send_private(sender, to, text)

    def on_joined(self, name: str) -> None:
        if self.room_size(self.lobby) <= self.announce_limit:
            self.notify(self.lobby.targets, protocol.encode_joined(name))

    def on_left(self, name: str, reason: str, rooms: list[str]) -> None:
        here = [r for n in rooms if (r := self._rooms.get(n)) and self.room_size(r) < self.announce_limit]
        self.notify(self.audience(here), protocol.encode_left(name, reason))

    def on_entered(self, name: str, room: str) -> None:
        local = self._rooms.get(room)
        if local is not None and self.room_size(local) <= self.announce_limit:
            self.notify(local.targets, protocol.encode_room_joined(name, room))

    def on_exited(self, name: str, room: str, reason: str) -> None:
        local = self._rooms.get(room)
        if local is not None and self.room_size(local) < self.announce_limit:
            self.notify(local.targets, protocol.encode_room_left(name, room, reason))

    def on_renamed(self, old: str, new: str, rooms: list[str]) -> None:
        here = [r for n in rooms if (r := self._rooms.get(n))]
        self.notify(self.audience(here), protocol.encode_renamed(old, new))
