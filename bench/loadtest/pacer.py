"""Probes sent at their intended time, to the microsecond, as the swarm sends them.

gevent's timers wake a greenlet to the millisecond (its loop waits in
``epoll_wait``, whose timeout is in whole milliseconds, rounded up), and a
woken user greenlet runs only when the receive loop gives way, so users who
slept until their probes' intended send times would send up to a millisecond
late, and in bursts behind rounds of reads -- all of it fan-out latency, as
open-loop measurement must count it, and bursts that queue at the server.
The swarm's worker instead sends what is due between two reads.  So does a
Locust process: a user hands its encoded probe and intended time to the
process's :class:`Pacer` (:meth:`Pacer.send_at`) and waits; the probe goes
out from whichever comes first once it is due: the receive loop, which looks
between any two reads (:meth:`Pacer.emit_due`, :mod:`bench.loadtest.rxloop`),
or the pacer's own greenlet, woken by a Linux ``timerfd`` armed with the
earliest intended time on the monotonic clock (to the nanosecond,
``TFD_TIMER_ABSTIME``; a time namespace's offset applies), which gevent
watches like any socket.  The send is one non-blocking ``write``: what the
kernel does not take at once (a full send buffer) goes back to the user,
which sends the rest cooperatively (:func:`send_rest`).  Over TLS the probe
is encrypted at that moment, so records leave in the order the channel
made them, and the rest is ciphertext.  Where there is no timerfd (not Linux)
the user sleeps until the time and sends itself.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import heapq
import itertools
import os
import sys
import time
from typing import Any

import gevent
from gevent.hub import Waiter

from bench.measure.stats import LatencyHistogram
from bench.net.tls import TlsFailure, TlsStream

#: <sys/timerfd.h>, <time.h>
CLOCK_MONOTONIC = 1
TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _timerfd() -> tuple[int, ctypes.CDLL] | None:
    """A non-blocking CLOCK_MONOTONIC timerfd and the libc that made it (None where there is none)."""
    if sys.platform != "linux":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fd = int(libc.timerfd_create(CLOCK_MONOTONIC, os.O_NONBLOCK | os.O_CLOEXEC))
    except (OSError, AttributeError):
        return None
    return (fd, libc) if fd >= 0 else None


class Job:
    """One probe waiting for its time."""

    __slots__ = ("cancelled", "data", "sock", "waiter")

    def __init__(self, sock: Any, data: bytes, waiter: Waiter) -> None:
        self.sock = sock  #: the user's (cooperative) socket
        self.data = data
        self.waiter = waiter
        self.cancelled = False  #: the user stopped waiting (its greenlet was killed)


#: What a user gets back: when the write returned (ns), the bytes the kernel
#: did not take (over TLS: of the records), and the error the write raised
#: (None: none).
Sent = tuple[int, bytes, "OSError | None"]


class Pacer:
    """Sends probes at their intended times (see the module docstring)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._heap: list[tuple[int, int, Job]] = []
        self._order = itertools.count()
        self._armed = 0  #: the time the timer is set for (0: not set)
        self._greenlet: gevent.Greenlet | None = None
        made = _timerfd()
        self._fd = made[0] if made is not None else -1
        self._libc: ctypes.CDLL | None = made[1] if made is not None else None
        #: how late each probe's write began after its intended time (us): the
        #: load generator's own share of the latency (the swarm's send lag)
        self.send_lag = LatencyHistogram()

    def send_at(self, due_ns: int, sock: Any, data: bytes) -> Sent:
        """Send ``data`` on ``sock`` at ``due_ns`` (``time.monotonic_ns()``; at
        once if past), letting other greenlets run meanwhile."""
        if self._fd < 0:
            wait = due_ns - time.monotonic_ns()
            if wait > 0:
                gevent.sleep(wait / 1e9)
            sent = _write(sock, data)
            self.send_lag.record(max(0, sent[0] - due_ns) // 1000)
            return sent
        job = Job(sock, data, Waiter())
        due_ns = max(due_ns, 1)  # (0 would turn the timer off)
        heapq.heappush(self._heap, (due_ns, next(self._order), job))
        if not self._armed or due_ns < self._armed:
            self._arm(due_ns)
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._run)
        try:
            result: Sent = job.waiter.get()
        finally:
            job.cancelled = True  # sent, or the user is gone: never send it (again)
        self.send_lag.record(max(0, result[0] - due_ns) // 1000)
        return result

    def take_send_lag(self) -> LatencyHistogram:
        """The send lags since the last take."""
        lag, self.send_lag = self.send_lag, LatencyHistogram()
        return lag

    @property
    def heap(self) -> list[tuple[int, int, Job]]:
        """The waiting probes, earliest first at index 0 (the receive loop
        looks at ``heap[0][0]`` between reads before it calls :meth:`emit_due`)."""
        return self._heap

    def emit_due(self, now_ns: int) -> None:
        """Send every probe due by ``now_ns``."""
        heap = self._heap
        if not heap or heap[0][0] > now_ns:
            return
        run_callback = gevent.get_hub().loop.run_callback
        while heap and heap[0][0] <= now_ns:
            job = heapq.heappop(heap)[2]
            if not job.cancelled:
                job.cancelled = True
                run_callback(job.waiter.switch, _write(job.sock, job.data))
        if self._armed and self._armed <= now_ns:
            # Sent before the timer went off: set it for the next probe (or
            # off), rather than wake the pacer for nothing.
            self._arm(heap[0][0] if heap else 0)

    def _arm(self, due_ns: int) -> None:
        """Set the timer for ``due_ns`` (0: off; a time in the past fires at once)."""
        spec = _Itimerspec()
        spec.it_value.tv_sec, spec.it_value.tv_nsec = divmod(due_ns, 1_000_000_000)
        assert self._libc is not None
        if self._libc.timerfd_settime(self._fd, TFD_TIMER_ABSTIME, ctypes.byref(spec), None) != 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime")
        self._armed = due_ns

    def _run(self) -> None:
        hub = gevent.get_hub()
        watcher = hub.loop.io(self._fd, 1)
        heap = self._heap
        while True:
            hub.wait(watcher)
            try:
                os.read(self._fd, 8)
            except BlockingIOError:
                pass
            self._armed = 0
            self.emit_due(time.monotonic_ns())
            if heap:
                self._arm(heap[0][0])


def _write(sock: Any, data: bytes) -> Sent:
    """One non-blocking write of ``data`` to ``sock``'s descriptor (gevent keeps it non-blocking)."""
    fd = sock.fileno()
    if fd < 0:
        return time.monotonic_ns(), data, OSError("the connection was closed")
    if isinstance(sock, TlsStream):
        try:
            data = sock.channel.encrypt(data)
        except TlsFailure as exc:
            return time.monotonic_ns(), b"", ConnectionError(str(exc))
    try:
        n = os.write(fd, data)
    except BlockingIOError:
        n = 0
    except OSError as exc:
        return time.monotonic_ns(), data, exc
    return time.monotonic_ns(), data[n:], None


def send_rest(sock: Any, rest: bytes) -> None:
    """Send what a paced write left (already encrypted over TLS), cooperatively."""
    if isinstance(sock, TlsStream):
        sock.sendall_records(rest)
    else:
        sock.sendall(rest)


_pacer: Pacer | None = None


def pacer() -> Pacer:
    """This process's pacer (a forked ``--processes`` child gets its own)."""
    global _pacer
    if _pacer is None or _pacer.pid != os.getpid():
        _pacer = Pacer()
    return _pacer


def take_send_lag() -> LatencyHistogram:
    """This process's send lags since the last take (empty where nothing was
    paced: a master, whose pacer need not exist)."""
    if _pacer is None or _pacer.pid != os.getpid():
        return LatencyHistogram()
    return _pacer.take_send_lag()
