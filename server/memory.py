"""Giving memory back to the system after a storm (glibc's malloc).

A fuzz storm (``tools/fuzzstorm.py``: 200 clients sending random garbage
lines for 10 s) took the server from 17 MiB to 360-640 MiB while it lasted
(every client's send queue may hold ``--send-queue-bytes``), and the process
kept 300-470 MiB for good once the clients had gone, although nothing of it
was still in use (``/proc/PID/smaps``: several 63 MiB anonymous regions, the
heaps of glibc's per-thread arenas).  Two reasons, two fixes:

* ``free`` hands memory back to the kernel only from the top of a heap; a
  thread arena's heap with one live chunk near its end keeps all the free
  pages below it.  ``malloc_trim(0)`` releases every free page of every
  arena (``madvise``).  :class:`Trimmer` calls it from the server's reaper,
  at most every :data:`TRIM_INTERVAL_SECONDS` and only while the resident
  size is :data:`TRIM_GROWTH_BYTES` above what it was at start-up, so an
  idle or small server never trims; after a storm RSS is back near idle.
  Churn frees memory too, a little at a time: 100,000 connections coming and
  going at 500 a second left 3 MiB more resident (10% of a 200-client
  server, ``make soak-churn``) with nothing of it in use, so the reaper also
  trims once RSS is :data:`TRIM_STEP_BYTES` above what the last trim left.
* glibc gives a thread that finds its arena locked a new arena, up to 8 per
  core; with one reader thread per client every one of the 16 arenas on 2
  cores keeps its own high-water mark.  The GIL serialises Python's
  allocations anyway, so :func:`limit_arenas` sets 2 (as ``MALLOC_ARENA_MAX=2``
  would) at start-up, unless the environment already sets it.

Elsewhere than glibc both are no-ops.
"""

from __future__ import annotations

import ctypes
import logging
import os
import time

log = logging.getLogger(__name__)

#: ``mallopt`` parameter number of M_ARENA_MAX (glibc's malloc.h).
M_ARENA_MAX = -8
#: Arenas a server process may have: the GIL serialises allocations, so more
#: only spread the high-water marks (see the module docstring).
ARENA_MAX = 2

#: Seconds between two looks at the resident size: a trim walks every arena
#: (20-90 ms after a 400 MiB storm, measured), so not more often than this.
TRIM_INTERVAL_SECONDS = 10.0
#: Trim only while RSS is this much above what it was at start-up: a small
#: server never pays for a trim.
TRIM_GROWTH_BYTES = 32 << 20
#: Trim also once RSS is this much above what the last trim (or start-up)
#: left: churn's slow creep (about 0.1 MiB/s at 500 connections a second)
#: is given back every few ticks; such a trim took 0.2-0.35 ms (three in
#: ``make soak-churn``, which then ended 4% above its size after the first
#: 1,000 churned, against 10% over without them).
TRIM_STEP_BYTES = 2 << 20


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "malloc_trim"):
        return None  # not glibc: no malloc_trim, arenas of its own kind
    return libc


_LIBC = _libc()


def limit_arenas(arenas: int = ARENA_MAX) -> bool:
    """Cap glibc's malloc arenas (before threads start); False where that is
    not possible or ``MALLOC_ARENA_MAX`` is set already (it wins)."""
    if _LIBC is None or "MALLOC_ARENA_MAX" in os.environ:
        return False
    return bool(_LIBC.mallopt(M_ARENA_MAX, arenas))


def resident_bytes() -> int:
    """This process's resident set size (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def trim() -> bool:
    """Give every free page of the heap back to the kernel; True if some were."""
    return _LIBC is not None and bool(_LIBC.malloc_trim(0))


class Trimmer:
    """Calls :func:`trim` while the resident size is well above what it was
    at start-up (see the module docstring); :meth:`tick` is called by the
    server's reaper.  A trim costs in proportion to the free memory it finds
    (milliseconds when little is free), so a busy server whose memory is in
    use pays little, and one that just came out of a storm gets it back."""

    def __init__(
        self,
        interval: float = TRIM_INTERVAL_SECONDS,
        growth: int = TRIM_GROWTH_BYTES,
        now: float | None = None,
        step: int = TRIM_STEP_BYTES,
    ) -> None:
        self.interval = interval
        self.growth = growth
        self.step = step
        self.enabled = _LIBC is not None
        self._next = (time.monotonic() if now is None else now) + interval
        #: RSS when the server started: trims happen only well above it.
        self.baseline = resident_bytes()
        #: RSS after the last trim (start-up's before the first).
        self.left = self.baseline
        self.trims = 0

    def tick(self, now: float) -> bool:
        """Trim if it is time and RSS is well past the start-up size or past
        what the last trim left; True if a trim ran."""
        if not self.enabled or now < self._next:
            return False
        self._next = now + self.interval
        before = resident_bytes()
        if before < self.baseline + self.growth and before < self.left + self.step:
            return False
        started = time.perf_counter()
        trim()
        after = resident_bytes()
        self.left = after
        self.trims += 1
        level = logging.INFO if before - after >= self.growth else logging.DEBUG
        log.log(
            level,
            "malloc_trim: RSS %.0f -> %.0f MiB in %.1f ms",
            before / (1 << 20),
            after / (1 << 20),
            (time.perf_counter() - started) * 1000,
        )
        return True
