"""How bytes reach one client: the fan-out strategies.

Both strategies have the same small interface (:class:`Outbox`): ``send``
hands over bytes that must reach the client whole and in order, ``close``
ends it after a last line.  Which one the server uses is ``--fanout``.

``queued`` (default)
    The caller first tries a non-blocking send.  What the kernel does not
    take at once goes into a bounded per-client backlog drained by that
    client's own writer thread, started the first time a backlog appears.
    Queued lines are coalesced into one ``sendall``.  A backlog past the
    send-queue limit disconnects that client ("send queue exceeded"); the
    sender never waits for a slow reader.

``direct``
    The seed's way: the sender's thread does a blocking ``sendall`` to every
    recipient.  One client that stops reading stalls everyone who talks.
    Kept as the slow reference for the benchmarks (with a per-client lock,
    so at least lines are never interleaved mid-line).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)

_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


class Outbox(Protocol):
    #: The error a send hit, if any.  A socket error is reported to only one
    #: syscall, so when a send sees ECONNRESET the reader just sees EOF; the
    #: session looks here to give the right leave reason.
    failure: OSError | None

    def send(self, data: bytes) -> None:
        """Deliver ``data`` after everything sent before; never raises."""

    def hold(self) -> None:
        """Make other threads' ``send`` wait until ``release``; the holding
        thread may still send.  Used so a new member's welcome line is the
        first thing it gets, even though it becomes visible to broadcasters
        at the same moment."""

    def release(self) -> None:
        """End ``hold``."""

    def close(self, last_line: bytes = b"", wake_reader: bool = True) -> None:
        """Send ``last_line`` if possible, then (with ``wake_reader``) shut the
        connection down both ways, which ends the reader's blocking recv."""


def _shutdown(sock: socket.socket) -> None:
    """Wake the reader thread (its recv returns b"") without closing the fd,
    which stays owned by the session."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class QueuedOutbox:
    """Non-blocking first try, then a bounded backlog and a lazy writer thread."""

    __slots__ = (
        "_backlog",
        "_backlog_bytes",
        "_closed",
        "_closing_line",
        "_limit",
        "_lock",
        "_name",
        "_on_overflow",
        "_shutdown_after",
        "_sock",
        "_wake",
        "_writer",
        "_writing",
        "failure",
    )

    def __init__(self, sock: socket.socket, limit_bytes: int, on_overflow: Callable[[], None], name: str) -> None:
        self._sock = sock
        self._limit = limit_bytes
        self._on_overflow = on_overflow
        self._name = name
        # Reentrant, for hold(): the holding thread sends the welcome line.
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._backlog: list[bytes] = []
        self._backlog_bytes = 0  # queued + being written by the writer
        self._writing = False
        self._writer: threading.Thread | None = None
        self._closed = False
        self._closing_line = b""
        self._shutdown_after = True
        self.failure: OSError | None = None

    @property
    def backlog_bytes(self) -> int:
        return self._backlog_bytes

    def hold(self) -> None:
        self._lock.acquire()

    def release(self) -> None:
        self._lock.release()

    def send(self, data: bytes) -> None:
        overflow = False
        with self._lock:
            if self._closed:
                return
            if not self._backlog and not self._writing:
                try:
                    sent = self._sock.send(data, _DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError as exc:
                    # The peer is gone; its reader thread will notice and clean up.
                    self.failure = exc
                    self._closed = True
                    return
                if sent == len(data):
                    return
                data = data[sent:]
            self._backlog.append(data)
            self._backlog_bytes += len(data)
            if self._backlog_bytes > self._limit:
                # Cut this client off; the session's overflow hook shuts the socket
                # down, which also unblocks a writer stuck in sendall.
                self._closed = True
                self._backlog.clear()
                self._wake.notify()
                overflow = True
            elif self._writer is None:
                self._writer = threading.Thread(target=self._drain, name=f"writer-{self._name}", daemon=True)
                self._writer.start()
            else:
                self._wake.notify()
        if overflow:
            self._on_overflow()

    def close(self, last_line: bytes = b"", wake_reader: bool = True) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wake.notify()
            if self._writer is not None and (self._backlog or self._writing):
                # Let the writer finish what is queued, then the last line, then shut down.
                self._closing_line = last_line
                self._shutdown_after = wake_reader
                return
        if last_line:
            try:
                self._sock.send(last_line, _DONTWAIT)
            except OSError:
                pass
        if wake_reader:
            _shutdown(self._sock)

    def _drain(self) -> None:
        sock = self._sock
        while True:
            with self._lock:
                while not self._backlog and not self._closed:
                    self._wake.wait()
                if not self._backlog:  # closed and nothing left to write
                    closing_line = self._closing_line
                    break
                chunk = b"".join(self._backlog) if len(self._backlog) > 1 else self._backlog[0]
                self._backlog.clear()
                self._writing = True
            try:
                sock.sendall(chunk)
            except OSError as exc:
                with self._lock:
                    if not self._closed:
                        self.failure = exc
                    self._closed = True
                    self._backlog.clear()
                    self._backlog_bytes = 0
                    self._writing = False
                return
            with self._lock:
                self._writing = False
                self._backlog_bytes -= len(chunk)
        if closing_line:
            try:
                sock.send(closing_line, _DONTWAIT)
            except OSError:
                pass
            if self._shutdown_after:
                _shutdown(sock)


class DirectOutbox:
    """Blocking ``sendall`` in the caller's thread: the seed's strategy."""

    __slots__ = ("_closed", "_lock", "_sock", "failure")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._lock = threading.RLock()
        self._closed = False
        self.failure: OSError | None = None

    def hold(self) -> None:
        self._lock.acquire()

    def release(self) -> None:
        self._lock.release()

    def send(self, data: bytes) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                self._sock.sendall(data)
            except OSError as exc:
                self.failure = exc
                self._closed = True

    def close(self, last_line: bytes = b"", wake_reader: bool = True) -> None:
        # Do not wait for the lock: a sender may be blocked on this client forever.
        self._closed = True
        if last_line:
            try:
                self._sock.send(last_line, _DONTWAIT)
            except OSError:
                pass
        if wake_reader:
            _shutdown(self._sock)
