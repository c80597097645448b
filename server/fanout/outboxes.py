"""The queued fan-out's per-client outbox: :class:`QueuedOutbox`.

One client's bounded queue, drained by the server's one
:class:`server.fanout.queued.Flusher`.  The client's own lines (welcome,
replies, private messages, the farewell) are numbered against the
broadcasts under the flusher's lock, so every thread's lines keep their
order; what the kernel does not take waits in the backlog until the socket
is writable again; a backlog past the send-queue limit disconnects the
client ("send queue exceeded"); and the socket is shut down, and closed,
only once the last line is out.

The flusher is the outbox's one partner: in a round it places bytes on the
queue itself (``_pending``, ``_own``) and reads ``fast_fd`` per recipient,
with no call in between; everything else goes through the methods here.
"""

from __future__ import annotations

import os
import socket
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from server.fanout.base import send_nowait, shutdown_how, shutdown_socket
from server.fanout.runs import Lines

if TYPE_CHECKING:
    from server.fanout.queued import Flusher

#: How the flusher writes to a plain socket's descriptor: ``os.write``, named
#: here so that one place can be changed (tests/perf/slow_server.py slows it
#: to prove the CI gate catches a slower fan-out): the fan-out's loop and a
#: flush of placed broadcasts (:meth:`QueuedOutbox._write_placed`) both call it.
write_fd = os.write


class QueuedOutbox:
    """A bounded per-client queue, drained by the server's :class:`Flusher`.

    Broadcasts never come through here (see :meth:`Flusher.broadcast`); the
    client's own lines (``send``, ``admit``, ``close``) are numbered against
    the broadcasts under the flusher's lock and put on ``_own``.  Everything
    else happens in the flusher thread, which also closes the socket once the
    session has let go of it (``dispose``), so no send can ever hit a
    descriptor that was closed and reused.
    """

    __slots__ = (
        "_backlog",
        "_backlog_bytes",
        "_close_seq",
        "_flusher",
        "_held",
        "_limit",
        "_on_overflow",
        "_own",
        "_pending",
        "_shutdown_after",
        "_sock",
        "closed",
        "disposed",
        "failure",
        "fast_fd",
        "fd",
        "name",
        "writable",
        "write_fd",
    )

    def __init__(
        self, sock: socket.socket, limit_bytes: int, on_overflow: Callable[[], None], name: str, flusher: Flusher
    ) -> None:
        self._sock = sock
        self.fd = sock.fileno()
        #: How the flusher's hot loop writes to this client, per recipient: a
        #: plain TCP socket is made non-blocking here and written with
        #: ``os.write`` on its descriptor (``write_fd``), which costs about a
        #: fifth less than ``socket.send``'s argument parsing
        #: (reports/perf-server.md, round 4); the reader thread then waits in
        #: poll before a recv (``Session.recv_lines``).  A transport (TLS,
        #: WebSocket) is sent to with its own ``send`` (``send_nowait``), and
        #: ``write_fd`` is -1.
        self.write_fd = -1
        if type(sock) is socket.socket:
            sock.setblocking(False)
            self.write_fd = self.fd
        #: ``write_fd`` while nothing stands in the way of writing a broadcast
        #: straight to the socket (writable; nothing pending, of its own or
        #: backlogged; not held or closed), else -1: the hot loop's one check
        #: instead of six attributes of three objects (reports/perf-server.md,
        #: round 6).  Whatever breaks that sets it to -1 first (other threads
        #: under the lock); only a flush sets it back (:meth:`_refresh`).
        self.fast_fd = self.write_fd
        self._limit = limit_bytes
        self._on_overflow = on_overflow
        self.name = name
        self._flusher = flusher
        #: Own lines not yet placed: (number of the next broadcast then, line).
        self._own: deque[tuple[int, bytes]] = deque()
        #: Bytes in their final order, not yet handed to a send (flusher only).
        self._pending: deque[bytes] = deque()
        self._held = False
        #: Broadcasts numbered at or after this are not for us any more.
        self._close_seq: int | None = None
        # The flusher's side: bytes the kernel has not taken yet.
        self._backlog: list[bytes] = []
        self._backlog_bytes = 0
        #: False while the socket is known to be full (waiting for EPOLLOUT).
        self.writable = True
        self.closed = False
        self.disposed = False
        self._shutdown_after: int | None = None
        self.failure: OSError | None = None

    def send(self, data: bytes) -> None:
        flusher = self._flusher
        with flusher.lock:
            if self.closed:
                return
            self._own.append((flusher.next_seq, data))
            self.fast_fd = -1
        flusher.schedule(self)

    def admit(self, first_line: bytes, publish: Callable[[], None]) -> None:
        # Queue the first line, publish, and only then let the flusher send.
        flusher = self._flusher
        with flusher.lock:
            self._held = True
            self.fast_fd = -1
            self._own.append((flusher.next_seq, first_line))
        try:
            publish()
        finally:
            self._held = False
            flusher.schedule(self)

    def close(self, last_line: bytes = b"", wake_reader: bool = True, half_close: bool = False) -> None:
        flusher = self._flusher
        with flusher.lock:
            if self.closed:
                return
            if last_line:
                self._own.append((flusher.next_seq, last_line))
            self._close_seq = flusher.next_seq
            self._shutdown_after = shutdown_how(wake_reader, half_close)
            self.closed = True
            self.fast_fd = -1
        flusher.schedule(self)

    def dispose(self) -> None:
        """The session is done: send what is queued if the socket takes it
        now, then close the socket (in the flusher thread)."""
        with self._flusher.lock:
            if self._close_seq is None:
                self._close_seq = self._flusher.next_seq
            self.closed = True
            self.fast_fd = -1
        self.disposed = True
        self._flusher.schedule(self)

    # -- flusher thread only ----------------------------------------------------

    def send_clear(self, data: bytes) -> bool:
        """``data`` in one non-blocking send, with nothing left over before
        it; False when the kernel did not take it all (the rest is the
        backlog, or the peer is gone)."""
        sent = send_nowait(self._sock, data)
        if sent == len(data):
            return True
        self.keep_unsent(data, sent)
        return False

    def keep_unsent(self, data: bytes, sent: int | OSError) -> None:
        """A send of ``data`` with nothing left over before it took only
        ``sent`` bytes (or failed): the rest becomes the backlog."""
        self.fast_fd = -1
        if isinstance(sent, OSError):
            self.failure = sent
            self.closed = True
            return
        self._backlog = [data[sent:]]
        self._backlog_bytes = len(data) - sent
        self.writable = False

    def add_broadcasts(self, lines: Lines) -> None:
        """Numbered broadcast lines for us, merged with our own lines in
        number order (an own line numbered n goes before broadcast n)."""
        own = self._own
        pending = self._pending
        close_seq = self._close_seq
        for seq, data in lines:
            while own and own[0][0] <= seq:
                pending.append(own.popleft()[1])
            if close_seq is not None and seq >= close_seq:
                return
            pending.append(data)

    def flush(self, end: int) -> None:
        """Place our own lines numbered up to ``end`` (every broadcast before
        ``end`` has been placed), then send everything placed in one
        non-blocking syscall."""
        own = self._own
        if (
            not own
            and self.write_fd >= 0
            and self.writable
            and self.failure is None
            and not (self._backlog or self.closed or self._held or self.disposed)
        ):
            self._write_placed()  # only broadcasts placed (a cut round's rest): the short way
            return
        if self.disposed and self._sock.fileno() == -1:
            # Closed already: broadcasts captured before it left still name it.
            own.clear()
            self._pending.clear()
            return
        if self._held:
            if own or self._pending:
                self._flusher.ready.append(self)  # the first line is not released yet: next round
            return
        pending = self._pending
        while own and own[0][0] <= end:
            pending.append(own.popleft()[1])
        if own:
            self._flusher.ready.append(self)  # waits for broadcasts not in this round yet
        if pending:
            self._send_placed(pending)
        if self.failure is None and self._backlog and (self.writable or self.disposed):
            self._send_backlog()
        self._settle()
        self._refresh()

    def _write_placed(self) -> None:
        """:meth:`flush` when nothing but placed broadcasts wait on a plain
        socket that takes data: one ``os.write``, as the fan-out's fast path,
        without the general flush's steps.  A cut round flushes every member
        it queued this way: 0.13-0.15 us less per outbox than the general
        flush (on socket pairs), and 2 points less server CPU at churn 500/s,
        1,000 x 100 msg/s, pinned (60-61% against 62-63%, alternated twice).
        The write's error handling is the fan-out loop's, written out again
        rather than called: the loop inlines it for speed."""
        pending = self._pending
        if pending:
            data = pending.popleft() if len(pending) == 1 else b"".join(pending)
            pending.clear()
            try:
                sent: int | OSError = write_fd(self.write_fd, data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                sent = exc
            if sent != len(data):
                self.keep_unsent(data, sent)
                self._settle()
        self._refresh()

    def _refresh(self) -> None:
        """After a flush: back on the fast path if nothing stands in the way.
        Under the lock, as other threads queue own lines and close under it:
        a line queued between the check and the store would be overtaken."""
        with self._flusher.lock:
            self.fast_fd = self.write_fd if self.clear() else -1

    def clear(self) -> bool:
        """Nothing stands in the way of sending a broadcast straight away:
        the socket takes data, nothing is pending, of our own or backlogged,
        and we are neither held nor closed."""
        return self.writable and not (self._pending or self._own or self._backlog or self.closed or self._held)

    def _send_placed(self, pending: deque[bytes]) -> None:
        """Send the placed bytes in one syscall when nothing is left over
        from before; what is not sent joins the backlog (or is dropped if
        the peer is gone).  Leaves ``pending`` empty."""
        if not self._backlog and self.writable and not self.disposed:
            # The common case: nothing left over, the socket takes data.
            n = len(pending)
            if self.failure is None:
                self.send_clear(pending.popleft() if n == 1 else b"".join([pending.popleft() for _ in range(n)]))
        if pending:
            parts = [pending.popleft() for _ in range(len(pending))]
            if self.failure is None:
                self._backlog.extend(parts)
                self._backlog_bytes += sum(map(len, parts))

    def _send_backlog(self) -> None:
        """Offer the whole backlog to the socket in one syscall."""
        data = b"".join(self._backlog) if len(self._backlog) > 1 else self._backlog[0]
        sent = send_nowait(self._sock, data)
        if isinstance(sent, OSError):
            # The peer is gone; its reader thread will see it and clean up.
            self.failure = sent
            self.closed = True
            sent = len(data)
        if sent == len(data):
            self._backlog = []
            self._backlog_bytes = 0
        else:
            self._backlog = [data[sent:]]
            self._backlog_bytes = len(data) - sent
            self.writable = False

    def _settle(self) -> None:
        """After a flush: close a disposed socket once its lines are placed,
        cut off a client past the send-queue limit, or shut the socket down
        once a closing client's last line is out."""
        own = self._own
        if self.disposed:
            if own:  # still waiting for its place: next round
                return
            self._backlog = []
            self._backlog_bytes = 0
            self._sock.close()
            return
        if self._backlog_bytes > self._limit and self.failure is None:
            self.failure = OSError("send queue exceeded")
            self._backlog = []
            self._backlog_bytes = 0
            self.writable = True
            self.closed = True
            self._on_overflow()
            return
        # A last line is queued before `closed` is set (under the lock), so
        # once everything queued is out, the last line is too.
        if self.closed and not self._backlog and not own and not self._pending and self._shutdown_after is not None:
            shutdown_socket(self._sock, self._shutdown_after)
            self._shutdown_after = None
