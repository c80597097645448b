"""One load-generator process: a non-blocking ``selectors`` loop over many
chat connections.  The loop only; what it drives lives beside it:

* :mod:`~bench.swarm.registrar`: connect at the ramp rate and register,
* :mod:`~bench.swarm.sender`: the open-loop send schedule,
* :mod:`~bench.swarm.receiver`: read, stamp and record deliveries,
* :mod:`~bench.swarm.connections`: per-connection state and the selector.

The parent (:mod:`bench.swarm.run`) starts P of these with ``multiprocessing``
and talks to each over a :class:`multiprocessing.connection.Connection`
with the typed messages of :mod:`bench.swarm.messages`.  A worker's life,
driven by the parent's commands:

1. **connect** (at start): open its share of connections at the ramp rate,
   at most ``max_inflight`` registering at once, register each one as a real
   client does (the protocol adapter, :func:`bench.wire.get`, says how),
   then report :class:`~bench.swarm.messages.Ready`.
2. :class:`~bench.swarm.messages.Stall`: open its stalled clients (register,
   then never read again; small ``SO_RCVBUF``), report ``Stalled``.
3. :class:`~bench.swarm.messages.Start`: the schedule.  Senders emit their
   probes at the intended send times, receivers measure every delivery,
   :class:`~bench.swarm.messages.Progress` goes to the parent a few times a
   second.
4. ``Release``: close the stalled clients.
5. ``StopSending``: stop writing; report what every sender fully handed to
   the kernel (``Sent``).
6. ``Finish``: with every sender's final count, compute the integrity
   counters and report the ``Result`` (histograms encoded, counters).
7. ``Exit``: close every socket and return.

Protocols: the worker itself knows none; the plan names one
(``WorkerPlan.protocol``) and its adapter frames what is sent, drives
registration, and turns received lines into what the recorder reads.
"""

from __future__ import annotations

import logging
import os
import select
import selectors
import time
import traceback
from collections import Counter
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from bench import wire
from bench.measure.integrity import IntegrityCounts
from bench.measure.labelled import EncodedHistogram
from bench.swarm.churn import ChurnDriver
from bench.swarm.connections import CLOSED, CONNECTING, REGISTERING, Conn, Sockets
from bench.swarm.messages import (
    ChurnReport,
    Command,
    Exit,
    Failed,
    Finish,
    LabelResult,
    Progress,
    Quiet,
    Release,
    Result,
    Settle,
    Stall,
    Start,
    StopSending,
)
from bench.swarm.panel import EVERY as PANEL_EVERY
from bench.swarm.panel import Panel
from bench.swarm.plan import RX_CLOCKS, WorkerPlan
from bench.swarm.receiver import Receiver
from bench.swarm.registrar import Registrar
from bench.swarm.sender import Sender
from bench.swarm.timeline import Timeline
from bench.wire import RECEIVER_LINE_LIMIT
from server.limits import raise_open_file_limit

__all__ = ["RECEIVER_LINE_LIMIT", "RX_CLOCKS", "Worker", "worker_main"]

log = logging.getLogger(__name__)

#: Seconds between ``progress`` reports to the parent while traffic runs.
PROGRESS_INTERVAL_S = 0.2

#: Within a long batch of socket events, look at the parent's commands this often.
HOUSEKEEPING_INTERVAL_NS = 20_000_000

#: Longest the loop sleeps in ``select`` with nothing scheduled, so commands
#: and registration deadlines are noticed promptly.
IDLE_WAIT_S = 0.05

#: ``select()`` handles only descriptors below FD_SETSIZE: past it, the epoll
#: fd cannot be waited on to the microsecond (see :meth:`Worker.run`).
FD_SETSIZE = 1024

#: Set to a directory to write each worker's cProfile stats there
#: (``swarm-worker-N.prof``), for profiling the receive path under load.
PROFILE_ENV = "CHATBENCH_SWARM_PROFILE"


class Worker:
    """The event loop of one worker process, and its command table."""

    def __init__(self, plan: WorkerPlan, ctl: Connection) -> None:
        self.plan = plan
        self.ctl = ctl
        self.sockets = Sockets()
        workload = plan.workload
        adapter = wire.get(plan.protocol, rooms=not workload.one_room)
        self.registrar = Registrar(plan, adapter, self.sockets, ctl.send)
        self.sender = Sender(plan.payload_bytes, adapter, self.sockets, workload)
        self.receiver = Receiver(plan, adapter, self.registrar, self.sender)
        self.timeline = Timeline(
            plan.index, plan.interval_s, self.receiver.recorder, self.receiver.reader, self.sockets, ctl.send
        )
        #: membership over time (churn, a storm, probes); None: everyone stays
        self.churn: ChurnDriver | None = None
        membership = workload.membership
        if membership is not None and membership.churn.active:
            self.churn = ChurnDriver(plan, adapter, self.registrar, self.receiver.recorder.labelled)
        #: the running schedule, while progress is reported
        self.reporting = False
        self.next_progress_ns = 0
        self.next_housekeeping_ns = 0
        self.done = False
        #: under churn, the steady receivers, read first (see bench.swarm.panel)
        self.panel: Panel | None = None
        #: the command table: message type -> handler
        self.commands: dict[type[Any], Callable[[Any], None]] = {
            Stall: self._on_stall,
            Settle: self._on_settle,
            Start: self._on_start,
            Release: self._on_release,
            StopSending: self._on_stop_sending,
            Finish: self._on_finish,
            Exit: self._on_exit,
        }

    # -- the loop ---------------------------------------------------------------

    def run(self) -> None:
        """Serve sockets and commands until ``Exit``."""
        sel = self.sockets.sel
        sel.register(self.ctl.fileno(), selectors.EVENT_READ, None)
        epoll_fd = [sel.fileno()]
        precise = epoll_fd[0] < FD_SETSIZE
        readable = self.receiver.readable
        writable = self._writable
        sender = self.sender
        heap = sender.heap
        while not self.done:
            timeout = self._timeout()
            if timeout > 0 and precise:
                # epoll sleeps in whole milliseconds (rounded up), so a send due
                # in 33.3 ms would go out 0.7 ms late: at 30 msg/s the median
                # send lag was 0.6-1.0 ms (0.12-0.16 ms with this, for every
                # wait; it was done only for waits under 10 ms).  select() on
                # the epoll fd itself sleeps to the microsecond and still wakes
                # on any socket event; the events are then fetched without waiting.
                select.select(epoll_fd, (), (), timeout)
                timeout = 0
            panel = self.panel
            for n, (key, mask) in enumerate(sel.select(timeout)):
                conn = key.data
                if conn is None:
                    self._commands()
                    continue
                if panel is not None and n % PANEL_EVERY == PANEL_EVERY - 1:
                    panel.read(readable)
                if mask & selectors.EVENT_READ and conn.state != CLOSED:
                    readable(conn)
                if mask & selectors.EVENT_WRITE and conn.state != CLOSED:
                    writable(conn)
                # One batch of events can take long under a backlog (every ready
                # socket drained once).  Sends due meanwhile go out now, and the
                # parent's commands and progress reports are seen every few ms,
                # so neither pacing nor control waits for receive work.
                t = time.monotonic_ns()
                if sender.sending and heap and heap[0][0] <= t:
                    sender.emit_due(t)
                if t >= self.next_housekeeping_ns and self._housekeeping(t):
                    break
            self._tick(time.monotonic_ns())
        self.sockets.close_all(self.registrar.stalled_conns)
        if self.panel is not None:
            self.panel.close()

    def _housekeeping(self, t: int) -> bool:
        """Every few ms within a batch of events: the clocks, the parent's
        commands, progress; True once ``Exit`` came."""
        self.next_housekeeping_ns = t + HOUSEKEEPING_INTERVAL_NS
        self.receiver.housekeeping()
        self.timeline.tick(t)
        self._commands()
        if self.reporting and t >= self.next_progress_ns:
            self._report_progress(t)
        return self.done

    def _tick(self, now: int) -> None:
        """Once per loop round: connections, sends, progress, housekeeping."""
        self.registrar.tick(now)
        if self.churn is not None:
            # Its leaves and connects take 0.1-0.3 ms each (a leave accounts every
            # stream the seat heard): sends due meanwhile go out between two.
            self.churn.tick(now, self._send_due)
        self._send_due()
        if self.reporting and now >= self.next_progress_ns:
            self._report_progress(now)
        if now >= self.next_housekeeping_ns:
            self.next_housekeeping_ns = now + HOUSEKEEPING_INTERVAL_NS
            self.receiver.housekeeping()
            self.timeline.tick(now)

    def _send_due(self) -> None:
        """The sends due by now, if any."""
        due = self.sender.due_ns()
        if due is not None:
            now = time.monotonic_ns()
            if due <= now:
                self.sender.emit_due(now)

    def _timeout(self) -> float:
        now = time.monotonic_ns()
        wait_ns = int(IDLE_WAIT_S * 1e9)
        if self.registrar.wants_more():
            wait_ns = min(wait_ns, max(0, self.registrar.next_connect_ns - now))
        due = self.sender.due_ns()
        if due is not None:
            if due - now <= self.plan.spin_us * 1000:
                return 0.0
            wait_ns = min(wait_ns, due - now)
        if self.churn is not None:
            churn_due = self.churn.due_ns()
            if churn_due is not None:
                wait_ns = min(wait_ns, max(0, churn_due - now))
        if self.reporting:
            wait_ns = min(wait_ns, max(0, self.next_progress_ns - now))
        return max(0.0, wait_ns / 1e9)

    def _writable(self, conn: Conn) -> None:
        if conn.state in (CONNECTING, REGISTERING):
            self.registrar.writable(conn)
        else:
            self.sender.writable(conn)

    # -- commands -------------------------------------------------------------------

    def _commands(self) -> None:
        while not self.done and self.ctl.poll():
            msg: Command = self.ctl.recv()
            handler = self.commands.get(type(msg))
            if handler is None:
                raise ValueError(f"unknown command {msg!r}")
            handler(msg)

    def _on_stall(self, msg: Stall) -> None:
        self.registrar.stall()

    def _on_settle(self, msg: Settle) -> None:
        churning = self.churn.churning() if self.churn is not None else 0
        self.ctl.send(Quiet(self.receiver.last_rx_ns, self.receiver.bytes_in, churning))

    def _on_start(self, msg: Start) -> None:
        schedule = msg.schedule
        self.receiver.recorder.measure_start_ns = schedule.measure_start_ns
        self.timeline.start(schedule)
        self.sender.start(schedule, list(self.sockets.conns.values()))
        if self.churn is not None:
            self.churn.start(schedule, self.timeline.times)
            self.receiver.block_filter = self.churn.filter_block
            self.panel = panel = Panel()
            seats = self.churn.seats
            for conn in self.registrar.receiver_conns:
                if conn.spec.cid not in seats and conn.state != CLOSED:
                    panel.add(conn)
        self.reporting = True
        self.next_progress_ns = time.monotonic_ns()

    def _on_release(self, msg: Release) -> None:
        self.registrar.release()

    def _on_stop_sending(self, msg: StopSending) -> None:
        self.ctl.send(self.sender.stop(self.registrar.sender_conns))

    def _on_finish(self, msg: Finish) -> None:
        churn = self.churn.finish(msg.sent) if self.churn is not None else None
        self.ctl.send(self._result(msg.sent, churn))
        self.reporting = False  # no more progress reports

    def _on_exit(self, msg: Exit) -> None:
        self.done = True

    # -- reports ----------------------------------------------------------------------

    def _report_progress(self, now: int) -> None:
        self.next_progress_ns = now + int(PROGRESS_INTERVAL_S * 1e9)
        schedule = self.sender.schedule
        assert schedule is not None
        senders = self.registrar.sender_conns
        audience = schedule.audience
        expected = sum(n * audience.get(sid, 0) for conn in senders for sid, n in conn.sent_by.items())
        # with churn the audience counts the steady receivers only, and so does the drain
        delivered = self.receiver.recorder.delivered_all if self.churn is None else self.churn.steady_received()
        self.ctl.send(
            Progress(
                t_ns=now,
                delivered=delivered,
                expected=expected,
                sent=sum(c.sent for c in senders),
                pending=self.sender.pending(),
                disconnects=sum(self.sockets.disconnects.values()),
            )
        )

    def _result(self, sent: dict[int, int], churn: ChurnReport | None) -> Result:
        receiver = self.receiver
        receiver.housekeeping()
        self.timeline.finish(time.monotonic_ns())
        rec = receiver.recorder
        labelled = rec.labelled
        workload = self.plan.workload
        counts = IntegrityCounts()
        by_label = {key: IntegrityCounts() for key in labelled.keys}
        by_pair: dict[tuple[int, int], IntegrityCounts] = {}
        receivers = self.registrar.receiver_conns
        for conn in receivers:
            assert conn.tracker is not None
            cid = conn.spec.cid
            owed = workload.sent_to(cid, sent)
            counts.add(conn.tracker.finish(owed))
            route = labelled.routes.get(cid, {})
            for stream, pair in conn.tracker.finish_by_sender(owed).items():
                by_pair[cid, stream] = pair
                at = 0 if labelled.single else route.get(stream)
                if at is not None:
                    by_label[labelled.keys[at]].add(pair)
        lost_by_interval = Counter(self.timeline.lost(workload, receivers, sent))
        if churn is not None:  # the churned seats' memberships (accounted by the churn driver)
            counts.add(churn.integrity)
            for pair_key, pair in churn.by_pair.items():
                by_pair.setdefault(pair_key, IntegrityCounts()).add(pair)
            for key, (_, label_counts) in churn.labels.items():
                by_label.setdefault(key, IntegrityCounts()).add(label_counts)
            lost_by_interval.update(churn.lost_by_interval)
        encoded = labelled.encoded()
        return Result(
            worker=self.plan.index,
            labels={key: LabelResult(encoded[key], by_label[key]) for key in labelled.keys},
            send_lag=EncodedHistogram.of(self.sender.send_lag),
            receive_lag=EncodedHistogram.of(receiver.reader.receive_lag),
            rx_clock="kernel" if receiver.reader.kernel else "read",
            unstamped_reads=receiver.reader.unstamped_reads,
            delivered_all=rec.delivered_all,
            delivered_measured=rec.delivered_measured,
            last_measured_recv_ns=rec.last_measured_recv_ns,
            integrity=counts,
            echoes=rec.echoes,
            lines=rec.lines,
            bytes_in=receiver.bytes_in,
            disconnects=dict(self.sockets.disconnects),
            receivers=len(receivers),
            by_pair=by_pair,
            strays=labelled.strays,
            shared_reads=rec.shared_reads,
            lost_by_interval=dict(lost_by_interval),
            connects={kind: hists.encoded() for kind, hists in self.registrar.connects.items()},
            churn=churn,
        )


def worker_main(plan: WorkerPlan, ctl: Connection) -> None:
    """Entry point of a worker process."""
    raise_open_file_limit()
    try:
        profile_dir = os.environ.get(PROFILE_ENV)
        if profile_dir:
            import cProfile

            path = os.path.join(profile_dir, f"swarm-worker-{plan.index}.prof")
            cProfile.runctx("Worker(plan, ctl).run()", globals(), locals(), path)
        else:
            Worker(plan, ctl).run()
    except BaseException:
        try:
            ctl.send(Failed(plan.index, traceback.format_exc()))
        except OSError:
            pass
        raise
    finally:
        ctl.close()
