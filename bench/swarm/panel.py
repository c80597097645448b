"""The steady receivers of a churn run, read first (a *panel*).

A TCP read returns the kernel's stamp of the newest segment it gathers
(:mod:`bench.net.stamps`), so a line read late, together with segments that
arrived after it, is stamped late too.  Under churn a worker has a thousand
receivers with bytes every few milliseconds (every join and leave notice
goes to all of them) and one pass over them takes ~10 ms on one core: a
receiver read at the end of a pass has gathered the next notices too.  With
500 connections a second replaced at 1,000 clients, the steady receivers'
p99 read that way was 25-27 ms while the server had handed every line to
the kernel within 9-10 ms of its intended send time (p99; measured inside
the server, reports/churn/fanout_probe/).

The steady receivers (those that stay for the whole run: what the churn
goal is judged by) are also registered here, in an epoll set of their own
that the worker looks at every :data:`EVERY` events of a batch: each is read
within a fraction of a millisecond of its bytes' arrival, and their latency
is the server's (p99 7.4-8.2 ms in the same runs).  The churned seats are
read as before, and later (their stamps still carry the pass's delay), and
every receiver's integrity is checked as before.
"""

from __future__ import annotations

import selectors
from collections.abc import Callable

from bench.swarm.connections import CLOSED, Conn

#: Events of a batch between two looks at the panel: ~8 us of work each
#: under churn, so a panel receiver waits at most ~0.25 ms for its read;
#: a look is one epoll_wait with no wait (~1 us).
EVERY = 32


class Panel:
    """Receivers read as soon as they have bytes, between a batch's events."""

    def __init__(self) -> None:
        self._sel = selectors.DefaultSelector()
        self.reads = 0  #: panel reads taken within batches

    def add(self, conn: Conn) -> None:
        """Put ``conn`` on the panel (its socket stays in the worker's own set too)."""
        self._sel.register(conn.sock, selectors.EVENT_READ, conn)

    def read(self, readable: Callable[[Conn], None]) -> None:
        """Hand every panel receiver with bytes to ``readable`` now (the
        batch's own event for it then finds nothing, and returns at once)."""
        for key, _ in self._sel.select(0):
            conn: Conn = key.data
            if conn.state != CLOSED:
                self.reads += 1
                readable(conn)

    def close(self) -> None:
        self._sel.close()
