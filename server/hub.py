"""Who is in the chat: names -> sessions under one lock, and broadcast.

Broadcast reads an immutable tuple of members that is replaced (under the
lock) on every join, leave and rename, so the hot path takes no lock of its
own: it encodes a line once and hands the same bytes either to the fan-out
strategy in one call (``fan_out``: the ``queued`` flusher) or to every
recipient's outbox.
"""

from __future__ import annotations

import itertools
import threading
from typing import TYPE_CHECKING

from server import protocol
from server.config import DEFAULT_ANNOUNCE_LIMIT

if TYPE_CHECKING:
    from server.fanout.base import FanOutHook, Outbox
    from server.session import Session


#: Up to this many members the welcome lists every name, sorted.
WELCOME_SORTED_UP_TO = 256


class NameTaken(Exception):
    pass


class Hub:
    def __init__(self, announce_limit: int = DEFAULT_ANNOUNCE_LIMIT) -> None:
        #: Join/leave notices only while at most this many are members.
        self.announce_limit = announce_limit
        self._lock = threading.Lock()
        self._by_key: dict[str, Session] = {}
        #: Member -> its current name.  The hub owns the names: a session
        #: learns its own from ``join``/``rename`` returning, and the welcome,
        #: /who and leave notices read them here.
        self._name_of: dict[Session, str] = {}
        #: Member -> its outbox, in join order; the source of _targets.
        self._outbox_of: dict[Session, Outbox] = {}
        #: Snapshot of the members as (session, outbox) pairs, replaced under
        #: the lock: broadcast, len() and /who read it without locking.
        self._targets: tuple[tuple[Session, Outbox], ...] = ()
        #: Hands a whole broadcast to the fan-out strategy in one call
        #: (``Flusher.broadcast``); None: the hub calls each outbox's ``send``.
        self.fan_out: FanOutHook | None = None
        #: Set when the server shuts down: leaves are then silent, because
        #: N clients each telling N-1 others that they left is O(N^2) work
        #: for notices nobody will read.
        self.closing = False

    # -- membership -------------------------------------------------------

    def join(self, session: Session, name: str) -> None:
        """Register ``session`` as ``name``; it gets the welcome line before any
        other line can reach it, then everyone else sees the join notice.  The
        session takes ``name`` as its own once this returns."""
        key = protocol.name_key(name)
        with self._lock:
            if key in self._by_key:
                raise NameTaken(name)
            self._name_of[session] = name
            self._by_key[key] = session
            self._outbox_of[session] = session.outbox
            welcome = protocol.encode_welcome(name, *self.welcome_roster())
            # The welcome must be the first line it gets, yet it must already be
            # a member when it reads the welcome (and anyone reacts to it).
            session.outbox.admit(welcome, self._publish)
        if len(self._targets) <= self.announce_limit:
            self.broadcast(protocol.encode_joined(name), exclude=session)

    def welcome_roster(self) -> tuple[list[str], int]:
        """Names for a welcome line and how many are online (caller holds the
        lock): all of them, sorted, in a small room; the earliest arrivals in
        a big one, where sorting every name for every arrival would cost
        O(N^2 log N).  A cluster's hub adds the other nodes' members."""
        name_of = self._name_of
        names = (name_of[s] for s in self._by_key.values())
        if len(self._by_key) <= WELCOME_SORTED_UP_TO:
            return sorted(names, key=str.casefold), len(self._by_key)
        return list(itertools.islice(names, WELCOME_SORTED_UP_TO)), len(self._by_key)

    def _publish(self) -> None:
        """Rebuild the broadcast snapshot (caller holds the lock); C-speed
        copies only, so a join in a room of 10,000 stays cheap."""
        self._targets = tuple(self._outbox_of.items())

    def leave(self, session: Session, reason: str) -> bool:
        """Remove ``session``; True the first (and only) time it was a member."""
        if session not in self._name_of:  # never joined: no lock needed
            return False
        with self._lock:
            name = self._name_of.pop(session, None)
            if name is None:
                return False
            del self._by_key[protocol.name_key(name)]
            del self._outbox_of[session]
            self._publish()
        if not self.closing and len(self._targets) < self.announce_limit:
            self.broadcast(protocol.encode_left(name, reason))
        return True

    def rename(self, session: Session, new_name: str) -> str:
        """Rename ``session``; returns the old name.  Everyone, the renamed
        client included, sees the notice.  The session takes ``new_name`` as
        its own once this returns."""
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
        self.broadcast(protocol.encode_renamed(old, new_name))
        return old

    # -- queries ------------------------------------------------------------

    def find(self, name: str) -> Session | None:
        return self._by_key.get(protocol.name_key(name))

    def name_of(self, session: Session) -> str | None:
        """``session``'s name while it is a member, else None."""
        return self._name_of.get(session)

    def names(self) -> list[str]:
        """Every member's name, sorted; reads the snapshot, takes no lock."""
        name_of = self._name_of
        return sorted((n for s, _ in self._targets if (n := name_of.get(s))), key=str.casefold)

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
        return len(self._targets)

    # -- fan-out --------------------------------------------------------------

    def broadcast(self, data: bytes, exclude: Session | None = None) -> None:
        if self.fan_out is not None:
            if not self.closing:
                self.fan_out(self._targets, data, exclude)
            return
        for member, outbox in self._targets:
            if member is not exclude:
                outbox.send(data)
            if self.closing:
                # Shutting down: stop fanning out, so busy threads get out of
                # the way of the one saying goodbye to everyone.
                return
