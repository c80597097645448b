"""Clocks across Locust workers: whose stamps are comparable, and by how much
another's must be moved (plain Python: no locust, no gevent).

A probe carries its sender's intended send time on the sender's
``time.monotonic_ns()`` clock; its receiver stamps the arrival on its own.
Every process on one machine reads one monotonic clock -- unless it runs in a
**time namespace** (``unshare --time``), whose monotonic clock is offset, with
the same boot id.  A process's clock is therefore named by its machine's boot
id *and* its time namespace's monotonic offset (:func:`clock_key`).

Between clocks the harness measures the **offset** (the master's clock minus
this one) the NTP way, over Locust's own messages (:mod:`bench.loadtest.clocksync`):
the worker sends its time ``t0``, the master answers with its time ``tm``, the
answer arrives at ``t1``.  The master read ``tm`` somewhere between ``t0``
and ``t1``, so ``offset = tm - (t0 + t1) / 2`` is off by at most half the
round trip.  Of several exchanges the one with the lowest round trip is kept
(:func:`estimate`), and the estimate is repeated during the run to follow the
clocks' drift; between estimates its bound grows by :data:`MAX_DRIFT_PPM`.

A receiver moves a foreign sender's stamp onto its own clock by the two
offsets: ``latency = arrival - intended - (offset_sender - offset_receiver)``,
within the sum of the two bounds (:meth:`ClockTable.correction`).  Two clocks
with the same key are one clock, and their measured offsets must agree within
their bounds: where they do not (a namespace the key could not see), they are
treated as two clocks and the master warns (:meth:`ClockTable.disagreements`).
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

#: How fast two monotonic clocks may drift apart between two estimates, in
#: parts per million: a free-running crystal is specified to about +-50 ppm
#: (NTP slews the monotonic clock and keeps synchronised machines far closer).
MAX_DRIFT_PPM = 50
#: ``--max-clock-error`` default (ms): a corrected latency whose offsets'
#: error bound is larger is counted, not measured.
DEFAULT_MAX_CLOCK_ERROR_MS = 1.0


#: Where Linux says which boot, and which time namespace, a process is in.
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
TIMENS_PATH = "/proc/self/timens_offsets"


def clock_key(boot_id_path: str = BOOT_ID_PATH, timens_path: str = TIMENS_PATH) -> str:
    """This process's monotonic clock: its machine's boot and its time
    namespace's monotonic offset (``BOOTHASH`` or ``BOOTHASH+monotonic=S.NNNNNNNNN``)."""
    try:
        boot = Path(boot_id_path).read_text().strip()
    except OSError:
        boot = socket.gethostname()
    key = hashlib.sha256(boot.encode()).hexdigest()[:12]
    offset = timens_monotonic_ns(timens_path)
    if offset:
        key += f"+monotonic={offset / 1e9:.9f}"
    return key


def timens_monotonic_ns(path: str = TIMENS_PATH) -> int:
    """The monotonic offset of this process's time namespace (0 outside one,
    or where the kernel has none)."""
    try:
        text = Path(path).read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "monotonic":
            return int(parts[1]) * 1_000_000_000 + int(parts[2])
    return 0


# --------------------------------------------------------------------------
# Estimates
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Estimate:
    """A clock's offset to the master's: ``master = local + offset_ns``,
    within ``bound_ns`` at the local time ``at_ns``."""

    offset_ns: int
    bound_ns: int
    at_ns: int

    def bound_at(self, now_ns: int) -> int:
        """The bound at ``now_ns`` (local): it grows with the time since the estimate."""
        return self.bound_ns + max(0, now_ns - self.at_ns) * MAX_DRIFT_PPM // 1_000_000


#: One exchange: (worker sent, master read, worker received), each on its own clock (ns).
Exchange = tuple[int, int, int]


def estimate(exchanges: Iterable[Exchange]) -> Estimate | None:
    """The offset from the exchange with the lowest round trip (None: no exchange)."""
    best = min(exchanges, key=lambda e: e[2] - e[0], default=None)
    if best is None:
        return None
    t0, tm, t1 = best
    if t1 < t0:
        return None
    return Estimate(offset_ns=tm - (t0 + t1) // 2, bound_ns=(t1 - t0 + 1) // 2, at_ns=t1)


def better(new: Estimate, old: Estimate | None) -> bool:
    """Whether ``new`` should replace ``old``: its bound is no larger than
    ``old``'s has grown to since."""
    return old is None or new.bound_ns <= old.bound_at(new.at_ns)


# --------------------------------------------------------------------------
# The table of every worker's clock
# --------------------------------------------------------------------------


class ClockEntry(TypedDict):
    """One process's clock as the master tells every worker (a Locust message).
    A worker announces its key at once; the offset follows with its first
    estimate (None until then)."""

    origin: int  #: the process's sender-id origin (:func:`bench.loadtest.support.origin_of`)
    key: str  #: :func:`clock_key`
    offset_ns: int | None
    bound_ns: int | None
    at_master_ns: int | None  #: when it was estimated, on the master's clock


@dataclass(frozen=True, slots=True)
class Correction:
    """How a sender's latencies reach the receiver's clock."""

    same: bool  #: one clock: no correction
    shift_ns: int = 0  #: subtract from arrival - intended
    bound_ns: int = 0  #: the corrected latency's error bound


#: Why a sender's latencies are not measured.
UNKNOWN = "offset unknown"
OVER_BOUND = "clock error over the bound"


class ClockTable:
    """Every process's clock as the master last told this one, and this
    process's own: who is on the same clock, and the correction for the others."""

    def __init__(self, origin: int, key: str) -> None:
        self.origin = origin
        self.key = key
        self.entries: dict[int, ClockEntry] = {}
        self.own: Estimate | None = None  #: this process's offset to the master
        self.version = 0  #: changes whenever anything above does

    def update(self, entries: Iterable[ClockEntry]) -> None:
        for entry in entries:
            self.entries[int(entry["origin"])] = entry
        self.version += 1

    def set_own(self, est: Estimate) -> None:
        self.own = est
        self.version += 1

    def correction(self, origin: int, now_ns: int, max_error_ns: int) -> Correction | str:
        """The correction for a sender of ``origin`` at ``now_ns`` (this
        process's clock), or why it cannot be measured (:data:`UNKNOWN`,
        :data:`OVER_BOUND`)."""
        if origin == self.origin:
            return Correction(same=True)
        entry = self.entries.get(origin)
        if entry is None:
            return UNKNOWN
        same_key = entry["key"] == self.key
        own = self.own
        offset, sender_bound, at = entry["offset_ns"], entry["bound_ns"], entry["at_master_ns"]
        if own is None or offset is None or sender_bound is None or at is None:
            # Offsets not measured yet: one clock by its key, else unknown.
            return Correction(same=True) if same_key else UNKNOWN
        now_master = now_ns + own.offset_ns
        bound = sender_bound + max(0, now_master - at) * MAX_DRIFT_PPM // 1_000_000 + own.bound_at(now_ns)
        shift = offset - own.offset_ns
        if same_key and abs(shift) <= bound:
            return Correction(same=True)
        if bound > max_error_ns:
            return OVER_BOUND
        return Correction(same=False, shift_ns=shift, bound_ns=bound)


def disagreements(entries: Iterable[ClockEntry]) -> list[str]:
    """Pairs of processes whose clock keys say one clock but whose offsets
    differ by more than their bounds: a clock the key cannot tell apart
    (they are corrected as two clocks).  One line per pair."""
    out: list[str] = []
    seen: list[ClockEntry] = []
    for entry in sorted(entries, key=lambda e: e["origin"]):
        offset, bound = entry["offset_ns"], entry["bound_ns"]
        if offset is None or bound is None:
            continue
        for other in seen:
            other_offset, other_bound = other["offset_ns"], other["bound_ns"]
            if other["key"] != entry["key"] or other_offset is None or other_bound is None:
                continue
            apart = abs(offset - other_offset)
            if apart > bound + other_bound:
                out.append(
                    f"workers {other['origin']:x} and {entry['origin']:x} report the same clock ({entry['key']}) "
                    f"but their offsets differ by {apart / 1e6:.3f} ms: corrected as two clocks"
                )
        seen.append(entry)
    return out
