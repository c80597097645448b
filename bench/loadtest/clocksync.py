"""Clock offsets between Locust's worker processes, over Locust's own messages.

Each worker announces its clock key as soon as it is connected (so workers
on one clock measure each other's deliveries from the first one), then
estimates its monotonic clock's offset to the master's
(:mod:`bench.loadtest.clocks`): every :data:`INTERVAL_S` it sends
:data:`EXCHANGES` timestamped pings (``runner.send_message``), the master
answers each with its own time, and the exchange with the lowest round trip
gives the offset, within half that round trip.  The worker keeps the better
of that and its previous estimate (whose bound has grown with the drift
allowance since) and reports it; the master keeps every worker's latest
(:class:`~bench.loadtest.clocks.ClockEntry`) and sends the table to all
workers, at once when a worker is new and at most every
:data:`TABLE_INTERVAL_S` otherwise.  A receiving user corrects a sender's
stamps with the table (:class:`bench.loadtest.receive.ClockLabels`).

The master also says what it sees: a worker in a time namespace (its clock
key names the namespace's offset), and workers whose keys claim one clock
but whose offsets disagree (:func:`~bench.loadtest.clocks.disagreements`).
A local run (no master) has one clock and exchanges nothing.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent
from gevent.event import Event
from locust.runners import MasterRunner, Runner, WorkerRunner

from bench.loadtest.clocks import ClockEntry, Exchange, better, disagreements, estimate
from bench.loadtest.receive import Receiving

log = logging.getLogger("chatbench.locust")

#: Message types (Locust's custom messages).
PING = "chatbench_clock_ping"
PONG = "chatbench_clock_pong"
REPORT = "chatbench_clock_report"
TABLE = "chatbench_clocks"
#: Exchanges per estimate: enough that one of them meets neither a busy
#: master nor a busy worker (the lowest round trip is kept).
EXCHANGES = 8
#: Seconds between the pings of one estimate, and how long the answers may
#: take once the last ping is out (one later than that is from a busy moment anyway).
EXCHANGE_GAP_S = 0.005
ANSWER_WAIT_S = 0.25
#: Seconds between estimates: the bound grows by the drift allowance in between.
INTERVAL_S = 1.0
#: The master sends the table at most this often (and at once for a new worker).
TABLE_INTERVAL_S = 1.0


class WorkerClock:
    """A worker's side: pings, its estimate, the table it is sent."""

    def __init__(self, runner: WorkerRunner, rx: Receiving) -> None:
        self.runner = runner
        self.rx = rx
        self.exchanges: list[Exchange] = []
        self.answered = Event()
        runner.register_message(PONG, self._on_pong)
        runner.register_message(TABLE, self._on_table)
        table = rx.table
        runner.send_message(REPORT, {"origin": table.origin, "key": table.key})
        self.greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        while True:
            self.estimate_once()
            gevent.sleep(INTERVAL_S)

    def estimate_once(self) -> None:
        """One round of exchanges; report the estimate if it is better."""
        self.exchanges = []
        self.answered.clear()
        for _ in range(EXCHANGES):
            self.runner.send_message(PING, {"t0": time.monotonic_ns()})
            gevent.sleep(EXCHANGE_GAP_S)
        self.answered.wait(ANSWER_WAIT_S)
        est = estimate(self.exchanges)
        table = self.rx.table
        if est is None or not better(est, table.own):
            return
        table.set_own(est)
        self.runner.send_message(
            REPORT,
            {
                "origin": table.origin,
                "key": table.key,
                "offset_ns": est.offset_ns,
                "bound_ns": est.bound_ns,
                "at_ns": est.at_ns,
            },
        )

    # Locust's message handlers: ``msg`` is a locust.rpc.Message (untyped data).
    def _on_pong(self, environment: Any, msg: Any, **_kwargs: Any) -> None:
        t1 = time.monotonic_ns()
        self.exchanges.append((int(msg.data["t0"]), int(msg.data["tm"]), t1))
        if len(self.exchanges) >= EXCHANGES:
            self.answered.set()

    def _on_table(self, environment: Any, msg: Any, **_kwargs: Any) -> None:
        self.rx.table.update(msg.data["entries"])


class MasterClock:
    """The master's side: answers pings, keeps and sends the table."""

    def __init__(self, runner: MasterRunner) -> None:
        self.runner = runner
        self.entries: dict[int, ClockEntry] = {}
        self.workers: dict[int, str] = {}  #: origin -> Locust's worker id
        self.warnings: list[str] = []
        self._dirty = False
        runner.register_message(PING, self._on_ping)
        runner.register_message(REPORT, self._on_report)
        self.greenlet = gevent.spawn(self._run)

    def _on_ping(self, environment: Any, msg: Any, **_kwargs: Any) -> None:
        self.runner.send_message(PONG, {"t0": msg.data["t0"], "tm": time.monotonic_ns()}, client_id=msg.node_id)

    def _on_report(self, environment: Any, msg: Any, **_kwargs: Any) -> None:
        data = msg.data
        origin = int(data["origin"])
        offset = data.get("offset_ns")
        entry = ClockEntry(origin=origin, key=str(data["key"]), offset_ns=None, bound_ns=None, at_master_ns=None)
        if offset is not None:  # an estimate (else the worker's first word: its key)
            entry["offset_ns"] = int(offset)
            entry["bound_ns"] = int(data["bound_ns"])
            entry["at_master_ns"] = int(data["at_ns"]) + int(offset)
        old = self.entries.get(origin)
        self.entries[origin] = entry
        self.workers[origin] = str(msg.node_id)
        if old is None and "+monotonic=" in entry["key"]:
            log.info(
                "worker %s runs in a time namespace (clock %s): its latencies are corrected by its offset",
                msg.node_id,
                entry["key"],
            )
        if old is None or old["offset_ns"] is None:
            self.send_table()  # a new worker, or its first offset: at once
        else:
            self._dirty = True
        for line in disagreements(self.entries.values()):
            if line not in self.warnings:
                self.warnings.append(line)
                log.warning("%s", line)

    def send_table(self) -> None:
        self._dirty = False
        self.runner.send_message(TABLE, {"entries": list(self.entries.values())})

    def _run(self) -> None:
        while True:
            gevent.sleep(TABLE_INTERVAL_S)
            if self._dirty:
                self.send_table()


def install(runner: Runner | None, rx: Receiving) -> WorkerClock | MasterClock | None:
    """Start the exchanges for this process's role (nothing for a local run)."""
    if isinstance(runner, WorkerRunner):
        return WorkerClock(runner, rx)
    if isinstance(runner, MasterRunner):
        return MasterClock(runner)
    return None
