"""The hub of a node in a cluster: the local :class:`~server.hub.Hub`, plus
the backplane.

Everything the local hub does still happens locally, at once; on top of it
every broadcast is also offered to the publisher (the other nodes deliver it
to their members), names are claimed in Redis before they are taken locally,
and ``/who``, the welcome line and ``/msg`` see the other nodes' members
through the link's directory.  What the other nodes publish comes in through
:meth:`deliver` and :meth:`deliver_private`, which reach local members only.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from server import protocol
from server.backplane import codec
from server.backplane.link import Link
from server.config import DEFAULT_ANNOUNCE_LIMIT
from server.hub import WELCOME_SORTED_UP_TO, Hub, NameTaken

if TYPE_CHECKING:
    from server.session import Session


class ClusterHub(Hub):
    def __init__(self, url: str, announce_limit: int = DEFAULT_ANNOUNCE_LIMIT) -> None:
        super().__init__(announce_limit)
        self.link = Link(url, self)
        self._node = self.link.node
        self._offer = self.link.publisher.offer
        #: Held from a name's claim in Redis to its local join, so two local
        #: sessions asking for one name cannot release each other's claim.
        self._claims = threading.Lock()

    def start(self) -> None:
        """Join the cluster (BackplaneError if Redis cannot be reached)."""
        self.link.start()

    def stop(self, reason: str) -> None:
        """Leave the cluster; the other nodes hear that our users left."""
        self.link.stop(self.local_names(), reason)

    # -- membership ---------------------------------------------------------------

    def join(self, session: Session, name: str) -> None:
        with self._claims:
            if self.find(name) is not None or not self.link.claim(name):
                raise NameTaken(name)
            try:
                super().join(session, name)
            except BaseException:
                self.link.release(name)
                raise
        self._offer(codec.encode_joined(self._node, name))

    def leave(self, session: Session, reason: str) -> bool:
        name = self.name_of(session)
        if not super().leave(session, reason) or name is None:
            return False
        if not self.closing:  # at shutdown ``stop`` says it for everyone at once
            self.link.release(name)
            self._offer(codec.encode_left(self._node, name))
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

    # -- queries ------------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(super().names() + self.link.directory.names(), key=str.casefold)

    def welcome_roster(self) -> tuple[list[str], int]:
        local, count = super().welcome_roster()
        remote = self.link.directory.names()
        names = local + remote
        if len(names) <= WELCOME_SORTED_UP_TO:
            names.sort(key=str.casefold)
        return names[:WELCOME_SORTED_UP_TO], count + len(remote)

    def send_private(self, sender: str, to: str, text: str) -> str | None:
        local = super().send_private(sender, to, text)
        if local is not None:
            return local
        remote = self.link.directory.find(to)
        if remote is not None:
            self._offer(codec.encode_private(self._node, sender, remote, text))
        return remote

    # -- fan-out ----------------------------------------------------------------------

    def broadcast(self, data: bytes, exclude: Session | None = None) -> None:
        super().broadcast(data, exclude)
        if not self.closing:
            self._offer(codec.encode_lines(self._node, data))

    # -- what the link calls (server.backplane.link.Room) -------------------------------

    def deliver(self, lines: bytes) -> None:
        """Lines from another node: to every local member."""
        super().broadcast(lines)

    def deliver_private(self, sender: str, to: str, text: str) -> None:
        super().send_private(sender, to, text)

    def local_names(self) -> list[str]:
        return super().names()
