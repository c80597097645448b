"""Kernel receive timestamps: when received bytes reached the socket.

With ``SO_TIMESTAMPNS`` on, Linux stamps every received segment with the
time it reached the socket, and ``recvmsg`` returns the stamp of the newest
segment it read as an ``SCM_TIMESTAMPNS`` control message (a ``struct
timespec`` on ``CLOCK_REALTIME``).  On loopback the stamp is taken while the
target's ``send`` runs, so a delivery's arrival time does not depend on when
the harness got around to reading it.  A read that gathers several segments
gets the newest one's stamp: earlier lines are stamped late, never early.

Every receive loop of the harness reads through :class:`bench.net.rx.StampedReader`.
"""

from __future__ import annotations

import platform
import socket
import struct
import sys
import time

#: Linux's SO_TIMESTAMPNS (asm-generic value; Python does not export it).
SO_TIMESTAMPNS = 35
#: Where that number is known to mean SO_TIMESTAMPNS (other architectures
#: number socket options differently; they get the harness clock).
_KERNEL_STAMP_MACHINES = frozenset({"x86_64", "amd64", "aarch64", "arm64", "i686", "riscv64"})
_TIMESPEC = struct.Struct("@qq")
#: Ancillary buffer for one ``struct timespec`` control message.
ANCILLARY_BYTES = socket.CMSG_SPACE(_TIMESPEC.size)


def supported() -> bool:
    """True where :data:`SO_TIMESTAMPNS` is known to be that option."""
    return sys.platform == "linux" and platform.machine().lower() in _KERNEL_STAMP_MACHINES


def enable(sock: socket.socket) -> bool:
    """Ask the kernel to stamp data received on ``sock``; False if it cannot.

    When no socket on the machine had stamps on, Linux switches stamping on
    from a work queue: segments arriving in the next moments can come
    without a stamp (:func:`recv_stamped` then returns 0 and callers fall
    back to their own clock).  Enable well before the traffic to be timed."""
    if not supported():
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def realtime_offset_ns() -> int:
    """CLOCK_REALTIME minus CLOCK_MONOTONIC now, in ns: subtract it from a
    kernel stamp to get ``time.monotonic_ns()`` time.  The realtime read is
    bracketed by two monotonic reads; their midpoint is used."""
    a = time.monotonic_ns()
    r = time.time_ns()
    b = time.monotonic_ns()
    return r - (a + b) // 2


def recv_stamped(sock: socket.socket, views: list[memoryview], offset_ns: int) -> tuple[int, int]:
    """``recvmsg_into(views)`` on a socket with stamps enabled: (bytes read,
    arrival of the newest segment read on the ``time.monotonic_ns()`` clock,
    or 0 if the kernel gave no stamp).  ``offset_ns`` is
    :func:`realtime_offset_ns`.  Reading into a reused buffer matters: a
    fresh bytes object of a few hundred KiB per call costs an mmap, mremap
    and munmap each time."""
    n, ancillary, _flags, _addr = sock.recvmsg_into(views, ANCILLARY_BYTES)
    for level, kind, stamp in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(stamp) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(stamp)
            return n, seconds * 1_000_000_000 + nanoseconds - offset_ns
    return n, 0
