"""How bytes reach one client: the fan-out strategies.

Every strategy has the same small interface (:class:`Outbox`): ``send``
hands over bytes that must reach the client whole and in order, ``close``
ends it after a last line, ``admit`` sends the first line of a new member.
Which one the server uses is ``--fanout``.

``queued`` (default): :class:`Flusher` + :class:`QueuedOutbox`
    A broadcast is handed to the flusher in one O(1) call (the hub's
    ``fan_out``): the broadcasting thread touches no recipient, wakes no
    thread per recipient and takes no per-recipient lock.  One flusher
    thread for the whole server takes every broadcast made since its last
    round, joins the lines that share an audience into one block (encoded
    once) and gives each recipient that block in ONE non-blocking ``send``.
    The busier the server, the more lines each send carries, so the batch
    grows with load by itself.  A client's own lines (welcome, replies,
    private messages) are numbered against the broadcasts, so every
    thread's lines keep their order.  What the kernel does not take waits in
    that client's queue and is retried when epoll says the socket is
    writable.  A queue past the send-queue limit disconnects that client
    ("send queue exceeded"); nobody waits for a slow reader.

``threads``: :class:`ThreadedOutbox`
    The first design: the caller tries a non-blocking send; what the kernel
    does not take goes into a bounded backlog drained by that client's own
    writer thread.  One syscall per line per recipient.  Kept for comparison.

``direct``: :class:`DirectOutbox`
    The seed's way: the sender's thread does a blocking ``sendall`` to every
    recipient.  One client that stops reading stalls everyone who talks.
    Kept as the slow reference for the benchmarks (with a per-client lock,
    so at least lines are never interleaved mid-line).
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)


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


def _send_nowait(sock: socket.socket, data: bytes) -> int | OSError:
    """One non-blocking send: the bytes the kernel took now (0 if it took
    none), or the error if the peer is gone.  Never waits, never raises."""
    try:
        return sock.send(data, _DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return 0
    except OSError as exc:
        return exc


def _how(wake_reader: bool, half_close: bool) -> int | None:
    return socket.SHUT_WR if half_close else socket.SHUT_RDWR if wake_reader else None


def _shutdown(sock: socket.socket, how: int | None = socket.SHUT_RDWR) -> None:
    """Wake the reader thread (its recv returns b"") without closing the fd,
    which stays owned by the session; ``how=SHUT_WR`` only sends our FIN."""
    if how is None:
        return
    try:
        sock.shutdown(how)
    except OSError:
        pass


class ThreadedOutbox:
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
        # Reentrant, for admit(): publish() runs while we hold it and may send.
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._backlog: list[bytes] = []
        self._backlog_bytes = 0  # queued + being written by the writer
        self._writing = False
        self._writer: threading.Thread | None = None
        self._closed = False
        self._closing_line = b""
        self._shutdown_after: int | None = socket.SHUT_RDWR
        self.failure: OSError | None = None

    def admit(self, first_line: bytes, publish: Callable[[], None]) -> None:
        with self._lock:  # other senders wait until the first line is out
            publish()
            self.send(first_line)

    def send(self, data: bytes) -> None:
        overflow = False
        with self._lock:
            if self._closed:
                return
            if not self._backlog and not self._writing:
                sent = _send_nowait(self._sock, data)
                if isinstance(sent, OSError):
                    # The peer is gone; its reader thread will notice and clean up.
                    self.failure = sent
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

    def dispose(self) -> None:
        self._sock.close()

    def close(self, last_line: bytes = b"", wake_reader: bool = True, half_close: bool = False) -> None:
        how = _how(wake_reader, half_close)
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wake.notify()
            if self._writer is not None and (self._backlog or self._writing):
                # Let the writer finish what is queued, then the last line, then shut down.
                self._closing_line = last_line
                self._shutdown_after = how
                return
        if last_line:
            _send_nowait(self._sock, last_line)
        _shutdown(self._sock, how)

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
            _send_nowait(sock, closing_line)
            _shutdown(sock, self._shutdown_after)


class DirectOutbox:
    """Blocking ``sendall`` in the caller's thread: the seed's strategy."""

    __slots__ = ("_closed", "_lock", "_sock", "failure")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._lock = threading.RLock()
        self._closed = False
        self.failure: OSError | None = None

    def admit(self, first_line: bytes, publish: Callable[[], None]) -> None:
        with self._lock:  # other senders wait until the first line is out
            publish()
            self.send(first_line)

    def send(self, data: bytes) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                self._sock.sendall(data)
            except OSError as exc:
                self.failure = exc
                self._closed = True

    def dispose(self) -> None:
        self._sock.close()

    def close(self, last_line: bytes = b"", wake_reader: bool = True, half_close: bool = False) -> None:
        # Do not wait for the lock: a sender may be blocked on this client forever.
        self._closed = True
        if last_line:
            _send_nowait(self._sock, last_line)
        _shutdown(self._sock, _how(wake_reader, half_close))


#: The audience of a broadcast: the hub's immutable snapshot of (member,
#: outbox) pairs; with this strategy every outbox is a :class:`QueuedOutbox`.
BroadcastTargets = tuple[tuple[object, Any], ...]


class Flusher:
    """The one writer thread behind every :class:`QueuedOutbox` of a server.

    Two ways in:

    * :meth:`broadcast` (the hot path): one line for every member of a
      snapshot, appended to the flusher's *log* in O(1) -- the broadcasting
      thread touches no recipient.  Each round the flusher takes the whole
      log, joins consecutive lines with the same audience into one block
      (encoded once), and gives every recipient that block in ONE
      non-blocking ``send``: when the socket takes it, no queue is touched
      at all.  The busier the server, the more lines a round carries, so the
      batch grows with load by itself.
    * an outbox's own lines (welcome, replies, private messages, last line):
      queued on that outbox, which is put on the ``ready`` deque.

    Order: broadcasts are numbered in log order under :attr:`lock`, and an
    outbox's own line records the number of the next broadcast when it was
    queued, so it is sent after every earlier broadcast and before every
    later one -- exactly the order each thread produced them in.

    What a socket does not take waits in that outbox's backlog and is retried
    when epoll says the socket is writable; past the send-queue limit the
    client is disconnected ("send queue exceeded").  The thread sleeps in
    ``epoll`` when there is nothing to do, woken by a pipe (written only when
    it is asleep) or by a backlogged socket becoming writable.
    """

    def __init__(self) -> None:
        self.ready: deque[QueuedOutbox] = deque()
        #: Orders broadcasts against outboxes' own lines (held for O(1) only).
        self.lock = threading.Lock()
        #: Number of the next broadcast (the log's lines are numbered before it).
        self.next_seq = 0
        self._log: deque[tuple[BroadcastTargets, bytes, object]] = deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._epoll = select.epoll()
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self._waiting: dict[int, QueuedOutbox] = {}  # fd -> outbox waiting for EPOLLOUT
        self._sleeping = False
        self._woken = False
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="flusher", daemon=True)
        self._thread.start()

    def broadcast(self, targets: BroadcastTargets, data: bytes, exclude: object = None) -> None:
        """Send ``data`` to every outbox in ``targets`` but ``exclude``'s; any thread."""
        with self.lock:
            self._log.append((targets, data, exclude))
            self.next_seq += 1
        if self._sleeping and not self._woken:
            self._wake()

    def schedule(self, outbox: QueuedOutbox) -> None:
        """Called by any thread after queueing data for ``outbox``."""
        self.ready.append(outbox)
        if self._sleeping and not self._woken:
            self._wake()

    def _wake(self) -> None:
        self._woken = True
        try:
            os.write(self._wake_w, b"!")
        except OSError:
            pass

    def drain(self, timeout: float) -> bool:
        """Wait until everything queued so far was handed to the kernel (or
        waits on a socket that will not take it); False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.ready and not self._log and self._sleeping:
                return True
            time.sleep(0.002)
        return False

    def stop(self) -> None:
        self._stopped = True
        self._wake()
        self._thread.join(2)

    def _run(self) -> None:
        ready = self.ready
        log_ = self._log
        epoll = self._epoll
        waiting = self._waiting
        while not self._stopped:
            if not ready and not log_:
                self._sleeping = True
                events = epoll.poll() if not ready and not log_ else []  # re-check after raising the flag
                self._sleeping = False
                self._woken = False
            elif waiting:
                # Busy: never sleeps, but backlogged sockets that can take more
                # must still be noticed, or they wait for the first lull.
                events = epoll.poll(0)
            else:
                events = []
            if events:
                for fd, _ in events:
                    if fd == self._wake_r:
                        try:
                            os.read(self._wake_r, 4096)
                        except OSError:
                            pass
                        continue
                    woken = waiting.pop(fd, None)
                    if woken is not None:
                        self._unregister(fd)
                        woken.writable = True
                        ready.append(woken)
            # Everything broadcast so far, then the outboxes with lines of their
            # own.  Whatever arrives meanwhile waits for the next round and so
            # travels in a bigger batch.
            with self.lock:  # the round's broadcasts, and the number after them
                end = self.next_seq
                items = [log_.popleft() for _ in range(len(log_))] if log_ else []
            if items:
                self._fan_out(items, end - len(items))
            for _ in range(len(ready)):
                outbox = ready.popleft()
                try:
                    outbox.flush(end)
                except Exception:  # one client's trouble never stops the flusher
                    log.exception("flushing %s failed", outbox.name)
                    outbox.failure = OSError("flush failed")
                if outbox.disposed:
                    if waiting.pop(outbox.fd, None) is not None:
                        self._unregister(outbox.fd)
                elif not outbox.writable and outbox.fd not in waiting:
                    try:
                        epoll.register(outbox.fd, select.EPOLLOUT | select.EPOLLONESHOT)
                        waiting[outbox.fd] = outbox
                    except (OSError, ValueError):
                        outbox.writable = True
        self._epoll.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _fan_out(self, items: list[tuple[BroadcastTargets, bytes, object]], first_seq: int) -> None:
        """Deliver one round of broadcasts (numbered from ``first_seq``):
        each run of lines with the same audience as one block per recipient."""
        start = 0
        while start < len(items):
            targets = items[start][0]
            stop = start + 1
            while stop < len(items) and items[stop][0] is targets:
                stop += 1
            run = items[start:stop]
            self._fan_out_run(targets, run, first_seq + start)
            start = stop

    def _fan_out_run(
        self, targets: BroadcastTargets, run: list[tuple[BroadcastTargets, bytes, object]], first_seq: int
    ) -> None:
        block = run[0][1] if len(run) == 1 else b"".join([data for _, data, _ in run])
        skipping = {exclude for _, _, exclude in run if exclude is not None}
        ready = self.ready
        for member, outbox in targets:
            data = block
            if member in skipping:  # a sender: every line of the run but its own
                data = b"".join([d for _, d, exclude in run if exclude is not member])
                if not data:
                    continue
            if (
                outbox.writable
                and not outbox._pending
                and not outbox._own
                and not outbox._backlog
                and not outbox.closed
                and not outbox._held
            ):
                # The common case: nothing queued, the socket takes data.  One
                # send, no queue touched.
                sent = _send_nowait(outbox._sock, data)
                if sent == len(data):
                    continue
                outbox.keep_unsent(data, sent)
                ready.append(outbox)  # limit check, EPOLLOUT registration
            elif outbox._own or outbox.closed:
                # Its own lines must interleave by number (or it is closing):
                # line by line.
                lines = [(first_seq + i, d) for i, (_, d, exclude) in enumerate(run) if exclude is not member]
                outbox.add_broadcasts(lines)
                ready.append(outbox)
            else:
                outbox._pending.append(data)
                ready.append(outbox)

    def _unregister(self, fd: int) -> None:
        try:
            self._epoll.unregister(fd)
        except (OSError, ValueError):
            pass


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
        "fd",
        "name",
        "writable",
    )

    def __init__(
        self, sock: socket.socket, limit_bytes: int, on_overflow: Callable[[], None], name: str, flusher: Flusher
    ) -> None:
        self._sock = sock
        self.fd = sock.fileno()
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
        flusher.schedule(self)

    def admit(self, first_line: bytes, publish: Callable[[], None]) -> None:
        # Queue the first line, publish, and only then let the flusher send.
        flusher = self._flusher
        self._held = True
        with flusher.lock:
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
            self._shutdown_after = _how(wake_reader, half_close)
            self.closed = True
        flusher.schedule(self)

    def dispose(self) -> None:
        """The session is done: send what is queued if the socket takes it
        now, then close the socket (in the flusher thread)."""
        with self._flusher.lock:
            if self._close_seq is None:
                self._close_seq = self._flusher.next_seq
            self.closed = True
        self.disposed = True
        self._flusher.schedule(self)

    # -- flusher thread only ----------------------------------------------------

    def keep_unsent(self, data: bytes, sent: int | OSError) -> None:
        """A send of ``data`` with nothing left over before it took only
        ``sent`` bytes (or failed): the rest becomes the backlog."""
        if isinstance(sent, OSError):
            self.failure = sent
            self.closed = True
            return
        self._backlog = [data[sent:]]
        self._backlog_bytes = len(data) - sent
        self.writable = False

    def add_broadcasts(self, lines: list[tuple[int, bytes]]) -> None:
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
        if not self._backlog and self.writable and not self.disposed:
            # The common case: nothing left over, the socket takes data.
            n = len(pending)
            if n and self.failure is None:
                data = pending.popleft() if n == 1 else b"".join([pending.popleft() for _ in range(n)])
                sent = _send_nowait(self._sock, data)
                if sent != len(data):
                    self.keep_unsent(data, sent)
        if pending:
            parts = [pending.popleft() for _ in range(len(pending))]
            if self.failure is None:
                self._backlog.extend(parts)
                self._backlog_bytes += sum(map(len, parts))
        if self.failure is None and self._backlog and (self.writable or self.disposed):
            data = b"".join(self._backlog) if len(self._backlog) > 1 else self._backlog[0]
            sent = _send_nowait(self._sock, data)
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
        if self.closed and not self._backlog and not own and not pending and self._shutdown_after is not None:
            _shutdown(self._sock, self._shutdown_after)
            self._shutdown_after = None
