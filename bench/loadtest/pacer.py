"""Send times to the microsecond for the Locust users, through a timerfd.

gevent's timers wake a greenlet to the millisecond (its loop waits in
``epoll_wait``, whose timeout is in whole milliseconds, rounded up), so a
user sleeping until its probe's intended send time sends up to a millisecond
late, about half a millisecond on average -- all of it counted as fan-out
latency, as open-loop measurement must.  The swarm's worker sends what is
due between two reads instead.  Here one timer per process, a Linux
``timerfd`` armed with the earliest intended time on the monotonic clock (to
the nanosecond, ``TFD_TIMER_ABSTIME``; a time namespace's offset applies),
becomes readable when it is due: gevent watches it like any socket and the
pacer wakes every user whose time has come; the receive loop
(:mod:`bench.loadtest.rxloop`) ends its round of reads as soon as one is due,
so a send waits for at most one read.  Where there is no timerfd
(not Linux) :meth:`Pacer.wait_until` falls back to ``gevent.sleep``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import heapq
import itertools
import os
import sys
import time

import gevent
from gevent.hub import Waiter

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


class Pacer:
    """Wakes greenlets at monotonic times, to the microsecond (see the module docstring)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._heap: list[tuple[int, int, Waiter]] = []
        self._order = itertools.count()
        self._armed = 0  #: the time the timer is set for (0: not set)
        self._greenlet: gevent.Greenlet | None = None
        made = _timerfd()
        self._fd = made[0] if made is not None else -1
        self._libc: ctypes.CDLL | None = made[1] if made is not None else None

    def due(self, now_ns: int) -> bool:
        """Whether a waiting greenlet's time has come (the receive loop ends
        its round then, so the send is not kept waiting behind reads)."""
        heap = self._heap
        return bool(heap) and heap[0][0] <= now_ns

    def wait_until(self, due_ns: int) -> None:
        """Return at ``due_ns`` (``time.monotonic_ns()``), letting other greenlets run meanwhile."""
        if due_ns <= time.monotonic_ns():
            return
        if self._fd < 0:
            gevent.sleep((due_ns - time.monotonic_ns()) / 1e9)
            return
        waiter = Waiter()
        heapq.heappush(self._heap, (due_ns, next(self._order), waiter))
        if not self._armed or due_ns < self._armed:
            self._arm(due_ns)
        if self._greenlet is None or self._greenlet.dead:
            self._greenlet = gevent.spawn(self._run)
        waiter.get()

    def _arm(self, due_ns: int) -> None:
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
            now = time.monotonic_ns()
            while heap and heap[0][0] <= now:
                _, _, waiter = heapq.heappop(heap)
                hub.loop.run_callback(waiter.switch, None)
            if heap:
                self._arm(heap[0][0])


_pacer: Pacer | None = None


def pacer() -> Pacer:
    """This process's pacer (a forked ``--processes`` child gets its own)."""
    global _pacer
    if _pacer is None or _pacer.pid != os.getpid():
        _pacer = Pacer()
    return _pacer
