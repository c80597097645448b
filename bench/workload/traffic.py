"""The timetable of a run's messages: which stream sends message m, when, how big.

The swarm numbers a run's messages ``m = 0, 1, ..., total - 1`` in the order
they are due.  Without a workload option message m is sent by stream slot
``m % streams`` at ``t0 + m / rate`` with the one payload size, computed as
it is needed.  A workload can change each of the three, and then
:func:`traffic` draws them once, from the workload's seed, as arrays:

* the **stream** of each message: with unequal shares (a publisher skew, the
  rate per room over rooms of different sender counts) a draw per message
  from the streams' shares;
* its **intended send time** (offset from t0): with Poisson arrivals, the
  sum of exponential gaps of mean ``1 / rate``;
* its **payload size**: a draw from the payload distribution.

A stream's sequence numbers count its own messages in this order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.workload.model import PayloadSizes, Workload

#: numpy seeds per purpose (with the workload's seed): the streams, the
#: arrival gaps and the payload sizes are drawn apart, so changing one does
#: not redraw the others.
_STREAMS, _ARRIVALS, _SIZES = 1, 2, 3


@dataclass(frozen=True)
class Traffic:
    """What :func:`traffic` drew (None: the arithmetic of the module docstring)."""

    slot_of: Any = None  #: numpy int32: the stream slot of message m
    offset_ns: Any = None  #: numpy int64: message m's intended time minus t0
    size_of: Any = None  #: numpy int32: message m's payload bytes

    @property
    def drawn(self) -> bool:
        return self.slot_of is not None or self.offset_ns is not None or self.size_of is not None

    def slot_messages(self, slots: int, total: int) -> list[Sequence[int]]:
        """Per slot, its messages' numbers in order (their index is their sequence number)."""
        if self.slot_of is None:
            return [range(slot, total, slots) for slot in range(slots)]
        import numpy as np

        order = np.argsort(self.slot_of, kind="stable")
        bounds = np.searchsorted(self.slot_of[order], np.arange(slots + 1))
        return [order[bounds[s] : bounds[s + 1]].tolist() for s in range(slots)]


def traffic(workload: Workload, shares: Sequence[float] | None, slots: int, total: int, rate: float) -> Traffic:
    """The drawn parts of the timetable of ``total`` messages over ``slots``
    streams (``shares``: each stream's share, None: equal) at ``rate``
    messages/s (0: a burst)."""
    import numpy as np

    seed = workload.seed
    slot_of = offset_ns = size_of = None
    if shares is not None and slots > 1:
        rng = np.random.default_rng([seed, _STREAMS])
        p = np.asarray(shares, dtype=np.float64)
        slot_of = rng.choice(slots, size=total, p=p / p.sum()).astype(np.int32)
    if workload.arrivals == "poisson" and rate > 0 and total > 1:
        rng = np.random.default_rng([seed, _ARRIVALS])
        gaps = rng.exponential(1e9 / rate, size=total - 1)
        offset_ns = np.zeros(total, dtype=np.int64)
        offset_ns[1:] = np.cumsum(gaps).astype(np.int64)
    if workload.payload is not None and workload.payload.fixed is None:
        size_of = payload_draws(workload.payload, total, np.random.default_rng([seed, _SIZES]))
    return Traffic(slot_of, offset_ns, size_of)


def payload_draws(payload: PayloadSizes, count: int, rng: Any) -> Any:
    """``count`` payload sizes drawn from ``payload`` (numpy int32)."""
    import numpy as np

    if payload.uniform:
        low, high = payload.sizes
        return rng.integers(low, high + 1, size=count).astype(np.int32)
    p = np.asarray(payload.weights, dtype=np.float64)
    return rng.choice(np.asarray(payload.sizes, dtype=np.int32), size=count, p=p / p.sum())
