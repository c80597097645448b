"""``--fanout queued`` (the default): :class:`Flusher` + :class:`QueuedOutbox`.

A broadcast is handed to the flusher in one O(1) call (the hub's
``fan_out``): the broadcasting thread touches no recipient, wakes no thread
per recipient and takes no per-recipient lock.  One flusher thread for the
whole server takes every broadcast made since its last round, joins the
lines that share an audience into one block (encoded once) and gives each
recipient that block in ONE non-blocking ``send``.  The busier the server,
the more lines each send carries, so the batch grows with load by itself.
A client's own lines (welcome, replies, private messages) are numbered
against the broadcasts, so every thread's lines keep their order.  What the
kernel does not take waits in that client's queue and is retried when epoll
says the socket is writable.  A queue past the send-queue limit disconnects
that client ("send queue exceeded"); nobody waits for a slow reader.

This is the server's hot path: the perf gate (``tests/perf``) and the
benchmarks measure it.  This module is the flusher: rounds, the fan-out and
its cuts.  A client's queue, its backlog, the send-queue limit and closing
are :mod:`server.fanout.outboxes`; the flusher places a round's bytes on
an outbox's queue directly (its ``_pending`` and ``_own``), as the hot path
cannot afford a call per recipient.  Which lines of a round go to whom (runs
of one audience, or of one room while people come and go) is
:mod:`server.fanout.runs`, with no sockets.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from server.fanout import outboxes
from server.fanout.base import FanOutHook, Outbox, OverflowHook
from server.fanout.outboxes import QueuedOutbox
from server.fanout.runs import BroadcastTargets, Item, Lines, joined, lines_for, mixed_audience, skips, split_runs

log = logging.getLogger(__name__)

#: How often ``drain`` looks whether the flusher is done: short next to a
#: shutdown's grace period, long enough not to compete with the flusher.
DRAIN_POLL_SECONDS = 0.002

#: How long ``stop`` waits for the flusher thread: it only has to finish one
#: round (every send is non-blocking), so 2 s means it is stuck.
STOP_JOIN_SECONDS = 2.0

#: Recipients a fan-out serves between two ``os.sched_yield()`` calls.  A
#: fan-out holds the GIL but for the instant of each send, and on a busy
#: core the thread that sent takes it straight back; a reader thread with a
#: line to broadcast then waits for the switch interval (5 ms), or longer
#: behind other waiters.  Yielding lets waiting threads run every ~0.3 ms
#: of sends.  Under churn (500 joins and parts a second, 1,000 members,
#: pinned, alternated 3 times) the steady clients' p99 fell from 7.1-7.6 to
#: 4.9-6.7 ms, the time from a line's intended send to its broadcast (p99)
#: from 3.7-4.5 to 2.4-3.2 ms.  Rooms of up to this many never yield; at
#: 1,000 x 30 msg/s without churn CPU and p99 did not move.
YIELD_EVERY = 128

#: A round that finds new broadcasts in the log at one of those points (a
#: line said while it served a big room) stops serving the room in order:
#: the members it has not reached yet get the rest of the run queued, as
#: any outbox with something waiting, and the new lines go out at once --
#: straight to the members already served, behind the queued rest for the
#: others, who then get both in one send when the round flushes them.
#: Without it a line said early in a 1,000-member fan-out waited for the
#: whole fan-out (3-5 ms under churn) before its first send.  See
#: :meth:`Flusher._defer` and :meth:`Flusher._absorb`.
CUT_IN = True

#: Bytes read from the wake-up pipe at once; one byte is written per wake-up
#: and only while the flusher sleeps, so one read empties it.
WAKE_READ_BYTES = 4096


class Flusher:
    """The one writer thread behind every :class:`QueuedOutbox` of a server.

    Two ways in:

    * :meth:`broadcast` (the hot path): one line for every member of a
      snapshot, appended to the flusher's *log* in O(1) -- the broadcasting
      thread touches no recipient.  Each round the flusher takes the whole
      log, joins consecutive lines with the same audience (or one room's
      audience as people come and go) into one block
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
        self._log: deque[Item] = deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._epoll = select.epoll()
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self._waiting: dict[int, QueuedOutbox] = {}  # fd -> outbox waiting for EPOLLOUT
        #: Held by whoever does a round's work on the outboxes: the flusher
        #: thread after each wake-up, or a broadcasting thread that fans out
        #: itself while the flusher sleeps (:meth:`broadcast`).  The outboxes'
        #: flusher-side state is touched only under it.
        self._round = threading.Lock()
        self._sleeping = False
        self._woken = False
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="flusher", daemon=True)
        self._thread.start()

    def broadcast(self, targets: BroadcastTargets, data: bytes, exclude: object = None) -> None:
        """Send ``data`` to every outbox in ``targets`` but ``exclude``'s; any thread.

        When the flusher sleeps and nothing is waiting in the log, the calling
        thread does the round's work itself (:meth:`_fan_out_now`): no wake-up,
        no second thread scheduled, no handing of the GIL back and forth.
        Otherwise the line joins the log for the flusher's next round."""
        if self._sleeping and not self._log and self._round.acquire(blocking=False):
            try:
                if self._fan_out_now(targets, data, exclude):
                    return
            finally:
                self._round.release()
        with self.lock:
            self._log.append((targets, data, exclude))
            self.next_seq += 1
        if self._sleeping and not self._woken:
            self._wake()

    def _fan_out_now(self, targets: BroadcastTargets, data: bytes, exclude: object) -> bool:
        """Under the round lock: fan one line out in this thread, numbered as
        the next broadcast; False (nothing done) when a broadcast is already
        in the log, which must go first.  Outboxes with something queued take
        their turn as in a round and are left on ``ready`` for the flusher."""
        with self.lock:
            if self._log:
                return False
            seq = self.next_seq
            self.next_seq += 1
        self._fan_out_run(targets, [(targets, data, exclude)], seq, cut=CUT_IN)
        if self.ready and self._sleeping and not self._woken:
            self._wake()
        return True

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
            if not self.ready and not self._log and self._sleeping and not self._round.locked():
                return True
            time.sleep(DRAIN_POLL_SECONDS)
        return False

    def stop(self) -> None:
        self._stopped = True
        self._wake()
        self._thread.join(STOP_JOIN_SECONDS)

    def _run(self) -> None:
        """The flusher thread: each round, wait for work (or only peek when
        busy), take the round's broadcasts, then flush every ready outbox."""
        log_ = self._log
        while not self._stopped:
            events = self._poll()
            with self._round:
                if events:
                    self._take_events(events)
                # Everything broadcast so far, then the outboxes with lines of their
                # own.  Whatever arrives meanwhile waits for the next round and so
                # travels in a bigger batch.
                with self.lock:  # the round's broadcasts, and the number after them
                    end = self.next_seq
                    items = [log_.popleft() for _ in range(len(log_))] if log_ else []
                if items:
                    self._fan_out(items, end - len(items), cut=CUT_IN)
                self._flush_ready(end)
        self._epoll.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _poll(self) -> list[tuple[int, int]]:
        """Sleep in epoll when there is nothing to do; when busy, only look
        (without waiting) for backlogged sockets that can take more."""
        ready = self.ready
        log_ = self._log
        if not ready and not log_:
            self._sleeping = True
            events = self._epoll.poll() if not ready and not log_ else []  # re-check after raising the flag
            self._sleeping = False
            self._woken = False
            return events
        if self._waiting:
            # Busy: never sleeps, but backlogged sockets that can take more
            # must still be noticed, or they wait for the first lull.
            return self._epoll.poll(0)
        return []

    def _take_events(self, events: list[tuple[int, int]]) -> None:
        """Empty the wake-up pipe; put sockets that became writable on ``ready``."""
        waiting = self._waiting
        for fd, _ in events:
            if fd == self._wake_r:
                try:
                    os.read(self._wake_r, WAKE_READ_BYTES)
                except OSError:
                    pass
                continue
            woken = waiting.pop(fd, None)
            if woken is not None:
                self._unregister(fd)
                woken.writable = True
                self.ready.append(woken)

    def _flush_ready(self, end: int) -> None:
        """Flush every outbox that was ready at the start of this call (those
        it puts back wait for the next round); a socket that stays full waits
        for EPOLLOUT.  Every YIELD_EVERY outboxes it lets waiting threads run,
        and broadcasts made meanwhile go out at once (:meth:`_absorb`)."""
        ready = self.ready
        epoll = self._epoll
        waiting = self._waiting
        log_ = self._log
        step = YIELD_EVERY
        for i in range(len(ready)):
            if not i % step:
                if i:
                    os.sched_yield()  # releases the GIL, as a big fan-out does
                if log_ and CUT_IN:
                    end = self._absorb()
            outbox = ready.popleft()
            try:
                outbox.flush(end)
            except Exception:  # one client's trouble never stops the flusher
                log.exception("flushing %s failed", outbox.name)
                outbox.failure = OSError("flush failed")
                outbox.fast_fd = -1
                outbox._pending.clear()  # dropped, as a failed outbox's sends are: none are left placed
            if outbox.disposed:
                if waiting.pop(outbox.fd, None) is not None:
                    self._unregister(outbox.fd)
            elif not outbox.writable and outbox.fd not in waiting:
                try:
                    epoll.register(outbox.fd, select.EPOLLOUT | select.EPOLLONESHOT)
                    waiting[outbox.fd] = outbox
                except (OSError, ValueError):
                    outbox.writable = True

    def _fan_out(self, items: list[Item], first_seq: int, cut: bool = False) -> None:
        """Deliver one round of broadcasts (numbered from ``first_seq``): each
        run (:func:`server.fanout.runs.split_runs`) as one block per recipient.
        With ``cut``, the last run may leave its unserved members queued when
        new broadcasts come in meanwhile (:data:`CUT_IN`)."""
        spans = list(split_runs(items))
        last = len(spans) - 1
        for n, (start, stop, mixed) in enumerate(spans):
            run = items[start:stop]
            cut_here = cut and n == last
            if mixed:
                # One room's lines with people coming and going between them: the
                # members of every snapshot get the run in one send, the others their lines.
                who = mixed_audience(run, first_seq + start)
                self._fan_out_run(who.union, run, first_seq + start, who.special, who.lines_of, cut_here)
            else:
                self._fan_out_run(items[start][0], run, first_seq + start, cut=cut_here)

    def _absorb(self) -> int:
        """Between chunks of a round's flush: the broadcasts made since the
        round took the log go out now (straight to whoever has nothing
        queued, behind the queue of whoever has).  Returns the number after
        them, the round's new end."""
        with self.lock:
            end = self.next_seq
            items = [self._log.popleft() for _ in range(len(self._log))]
        if items:
            self._fan_out(items, end - len(items))
        return end

    def _fan_out_run(
        self,
        targets: Sequence[tuple[object, Any]],
        run: list[Item],
        first_seq: int,
        special: set[object] | None = None,
        lines_of: dict[object, Lines] | None = None,
        cut: bool = False,
    ) -> None:
        """One run of lines with the same audience: one block per recipient
        (``special``, ``lines_of``: a mixed run's, :func:`server.fanout.runs.mixed_audience`).
        The loop is the server's hottest: per recipient, in the common case
        (nothing queued, the socket takes the block), one attribute of the
        outbox (``fast_fd``) and one ``os.write``, no function call in between.
        With ``cut``, a chunk boundary that finds new broadcasts in the log
        queues the rest of the run for the members not served yet (:data:`CUT_IN`)."""
        block = run[0][1] if len(run) == 1 else b"".join([data for _, data, _ in run])
        size = len(block)
        only, skipping = skips(run, special)
        ready = self.ready
        write = outboxes.write_fd
        step = YIELD_EVERY
        chunks = (targets,) if len(targets) <= step else [targets[i : i + step] for i in range(0, len(targets), step)]
        for k, chunk in enumerate(chunks):
            if k:
                os.sched_yield()  # releases the GIL: waiting threads run (YIELD_EVERY)
                if cut and self._log:
                    self._defer(chunks[k:], block, run, first_seq, special, lines_of)
                    return
            for member, outbox in chunk:
                if member is only:
                    continue  # a one-line run's sender: the line is its own, nothing for it
                if skipping and member in skipping:
                    lines = lines_of[member] if lines_of is not None else lines_for(member, run, first_seq)
                    self._other_lines(outbox, lines)
                    continue
                fd = outbox.fast_fd
                if fd >= 0:
                    # The common case: nothing queued, the socket takes data.  One
                    # send, no queue touched.
                    try:
                        sent: int | OSError = write(fd, block)
                    except (BlockingIOError, InterruptedError):
                        sent = 0
                    except OSError as exc:
                        sent = exc
                    if sent == size:
                        continue
                    outbox.keep_unsent(block, sent)
                    ready.append(outbox)  # limit check, EPOLLOUT registration
                else:
                    self._deliver(member, outbox, block, run, first_seq)

    def _defer(
        self,
        chunks: Sequence[Sequence[tuple[object, Any]]],
        block: bytes,
        run: list[Item],
        first_seq: int,
        special: set[object] | None,
        lines_of: dict[object, Lines] | None,
    ) -> None:
        """A cut run's members not served yet: what the run has for each is
        queued on its outbox (off the fast path until flushed), so that
        lines broadcast later go behind it, and the round flushes it."""
        only, skipping = skips(run, special)
        for chunk in chunks:
            for member, outbox in chunk:
                if member is only:
                    continue
                lines: Lines | None = None
                data = block
                if skipping and member in skipping:
                    lines = lines_of[member] if lines_of is not None else lines_for(member, run, first_seq)
                    if not lines:
                        continue
                    data = joined(lines)
                outbox.fast_fd = -1
                if outbox._own or outbox.closed:
                    self._queue_lines(outbox, lines if lines is not None else lines_for(member, run, first_seq))
                else:
                    self._place(outbox, data)

    def _deliver(self, member: object, outbox: QueuedOutbox, block: bytes, run: list[Item], first_seq: int) -> None:
        """A recipient off the fast path (``fast_fd`` -1): a transport's
        socket, or something queued, full or closing."""
        if outbox.clear():
            self._send_clear(outbox, block)
        elif outbox._own or outbox.closed:
            self._queue_lines(outbox, lines_for(member, run, first_seq))
        else:
            self._place(outbox, block)

    def _other_lines(self, outbox: QueuedOutbox, lines: Lines) -> None:
        """A sender of the run, or a member of only some of a mixed run's
        snapshots: ``lines``, the run's lines meant for it."""
        if not lines:
            return
        data = joined(lines)
        if outbox.clear():
            self._send_clear(outbox, data)
        elif outbox._own or outbox.closed:
            self._queue_lines(outbox, lines)
        else:
            self._place(outbox, data)

    def _place(self, outbox: QueuedOutbox, data: bytes) -> None:
        """``data`` placed for ``outbox``'s next flush.  An outbox with
        placed bytes is on ``ready`` already (whoever places the first puts
        it there, and a flush leaves none placed), so it goes there only once:
        a cut round places several runs for the same members."""
        pending = outbox._pending
        if not pending:
            self.ready.append(outbox)
        pending.append(data)

    def _send_clear(self, outbox: QueuedOutbox, data: bytes) -> None:
        """``data`` to an outbox with nothing in the way (:meth:`QueuedOutbox.clear`)
        now; one the kernel did not take all of flushes its backlog next round."""
        if not outbox.send_clear(data):
            self.ready.append(outbox)

    def _queue_lines(self, outbox: QueuedOutbox, lines: Lines) -> None:
        """A recipient with its own lines queued (or closing): the run's
        lines interleave with them by number, line by line."""
        outbox.add_broadcasts(lines)
        self.ready.append(outbox)

    def _unregister(self, fd: int) -> None:
        try:
            self._epoll.unregister(fd)
        except (OSError, ValueError):
            pass


class QueuedFanout:
    """The server's one :class:`Flusher` (started here) and its outboxes."""

    def __init__(self, send_queue_bytes: int) -> None:
        self._limit = send_queue_bytes
        self.flusher = Flusher()
        self.fan_out: FanOutHook | None = self.flusher.broadcast

    def outbox(self, sock: socket.socket, on_overflow: OverflowHook, name: str) -> Outbox:
        return QueuedOutbox(sock, self._limit, on_overflow, name, self.flusher)

    def drain(self, timeout: float) -> bool:
        return self.flusher.drain(timeout)

    def stop(self) -> None:
        self.flusher.stop()
