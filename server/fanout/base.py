"""What every fan-out strategy shares: the :class:`Outbox` interface a session
writes to, the :class:`Fanout` interface the server builds once, and the two
socket helpers every strategy uses (a send that never waits, a shutdown that
never raises)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Protocol

#: ``send`` flag for one non-blocking attempt on a blocking socket (Linux);
#: 0 where it does not exist.  Sockets stay blocking for their reader thread,
#: so a writer that must never wait asks per call.
DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)

#: Called by an outbox (any thread) when its client fell so far behind that it
#: must be cut off ("send queue exceeded").
OverflowHook = Callable[[], None]


class Outbox(Protocol):
    #: The error a send hit, if any.  A socket error is reported to only one
    #: syscall, so when a send sees ECONNRESET the reader just sees EOF; the
    #: session looks here to give the right leave reason.
    failure: OSError | None

    def send(self, data: bytes) -> None:
        """Deliver ``data`` after everything sent before; never raises."""

    def admit(self, first_line: bytes, publish: Callable[[], None]) -> None:
        """Send ``first_line`` (a welcome) and call ``publish`` (which makes the
        client visible to broadcasters) so that ``first_line`` is the first
        line the client gets, and is not on the wire before ``publish``
        returned: whoever reacts to it finds the client already published."""

    def close(self, last_line: bytes = b"", wake_reader: bool = True, half_close: bool = False) -> None:
        """Send ``last_line`` if possible, then (with ``wake_reader``) shut the
        connection down both ways, which ends the reader's blocking recv.
        With ``half_close`` only our sending side is shut (FIN after the last
        line) and the reader goes on reading until the client closes too, so
        the last line is not lost to a reset."""

    def dispose(self) -> None:
        """The session is finished with the socket: close it (now, or when the
        writer is done with it)."""


#: The audience of a broadcast: the hub's immutable snapshot of (member,
#: outbox) pairs.  Members are opaque here (the hub's sessions).  A snapshot
#: may carry an ``origin`` (its room: ``server.rooms.Snapshot``): snapshots
#: of one origin are one audience changing over time, which the ``queued``
#: flusher batches as one.
Targets = tuple[tuple[object, Outbox], ...]

#: Hands one broadcast (audience, line, member not to send it to) to the
#: strategy in one call.
FanOutHook = Callable[[Targets, bytes, object], None]


class Fanout(Protocol):
    """One server's fan-out strategy, chosen once from its config (see
    :func:`server.fanout.make_fanout`)."""

    #: How the hub hands over a whole broadcast in one call; ``None``: the hub
    #: calls each member outbox's ``send`` itself.
    fan_out: FanOutHook | None

    def outbox(self, sock: socket.socket, on_overflow: OverflowHook, name: str) -> Outbox:
        """The outbox for one new client's socket."""

    def drain(self, timeout: float) -> bool:
        """Wait until everything queued so far was handed to the kernel; False
        on timeout.  Strategies that queue nothing return at once."""

    def stop(self) -> None:
        """End the strategy's own threads, if any (server shutdown)."""


class LockedOutbox:
    """Base of the outboxes whose senders take turns on one reentrant lock
    (``direct``, ``threads``): ``admit`` holds it while publishing, so the
    first line goes out before any broadcast can reach the new member."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        # Reentrant: publish() runs while admit holds it, and may send.
        self._lock = threading.RLock()

    def send(self, data: bytes) -> None:
        raise NotImplementedError

    def admit(self, first_line: bytes, publish: Callable[[], None]) -> None:
        with self._lock:  # other senders wait until the first line is out
            publish()
            self.send(first_line)


class HubSendsFanout:
    """Base of the strategies without a thread of their own: the hub calls
    each member outbox's ``send`` itself, and nothing is queued server-wide."""

    fan_out: FanOutHook | None = None

    def drain(self, timeout: float) -> bool:
        return True

    def stop(self) -> None:
        pass


def send_nowait(sock: socket.socket, data: bytes) -> int | OSError:
    """One non-blocking send: the bytes the kernel took now (0 if it took
    none), or the error if the peer is gone.  Never waits, never raises."""
    try:
        return sock.send(data, DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return 0
    except OSError as exc:
        return exc


def shutdown_how(wake_reader: bool, half_close: bool) -> int | None:
    """The ``shutdown`` direction an outbox's ``close`` arguments ask for
    (``None``: leave the socket open)."""
    return socket.SHUT_WR if half_close else socket.SHUT_RDWR if wake_reader else None


def shutdown_socket(sock: socket.socket, how: int | None = socket.SHUT_RDWR) -> None:
    """Wake the reader thread (its recv returns b"") without closing the fd,
    which stays owned by the session; ``how=SHUT_WR`` only sends our FIN."""
    if how is None:
        return
    try:
        sock.shutdown(how)
    except OSError:
        pass
