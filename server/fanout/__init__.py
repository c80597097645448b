"""How bytes reach the clients: the fan-out strategies.

Every strategy gives each client an :class:`Outbox` (``send`` bytes that must
reach the client whole and in order, ``admit`` the first line of a new
member, ``close`` after a last line) and is one :class:`Fanout`, which the
server builds once from ``--fanout`` with :func:`make_fanout`.  Sessions and
the hub only ever see those two interfaces.

``queued`` (default, :mod:`server.fanout.queued`)
    One flusher thread for the whole server batches every broadcast per
    recipient into one non-blocking send; a slow reader's queue is bounded.
``threads`` (:mod:`server.fanout.threads`)
    A non-blocking first try, then a bounded backlog and a writer thread per
    client.  One syscall per line per recipient.  Kept for comparison.
``direct`` (:mod:`server.fanout.direct`)
    The seed's blocking ``sendall`` in the sender's thread.  The slow
    reference for the benchmarks.

A new strategy is one module with an outbox and a ``Fanout`` class, and one
row in :data:`STRATEGIES` (and ``server.config.FANOUT_STRATEGIES``).
"""

from __future__ import annotations

from collections.abc import Callable

from server.fanout.base import Fanout, FanOutHook, Outbox, OverflowHook, Targets
from server.fanout.direct import DirectFanout, DirectOutbox
from server.fanout.outboxes import QueuedOutbox
from server.fanout.queued import Flusher, QueuedFanout
from server.fanout.threads import ThreadedOutbox, ThreadsFanout

#: ``--fanout`` name -> the strategy, built from the send-queue limit.
STRATEGIES: dict[str, Callable[[int], Fanout]] = {
    "queued": QueuedFanout,
    "threads": ThreadsFanout,
    "direct": DirectFanout,
}


def make_fanout(strategy: str, send_queue_bytes: int) -> Fanout:
    """Start the fan-out strategy named ``strategy`` (its threads, if any)."""
    try:
        factory = STRATEGIES[strategy]
    except KeyError:
        raise ValueError(f"unknown fan-out strategy {strategy!r}; one of {', '.join(STRATEGIES)}") from None
    return factory(send_queue_bytes)


__all__ = [
    "STRATEGIES",
    "DirectFanout",
    "DirectOutbox",
    "FanOutHook",
    "Fanout",
    "Flusher",
    "Outbox",
    "OverflowHook",
    "QueuedFanout",
    "QueuedOutbox",
    "Targets",
    "ThreadedOutbox",
    "ThreadsFanout",
    "make_fanout",
]
