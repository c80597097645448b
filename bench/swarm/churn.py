"""A worker's membership over time: churn, a reconnect storm, connect probes.

The plan says who leaves when (:class:`bench.workload.membership.Membership`);
this driver does it with the worker's own connections, from the ``start``
command on:

* a **churn** event makes its seat's connection leave (a protocol quit, or a
  TCP reset) and opens its replacement at once (the same name, or a new one:
  ``NAMErK``);
* the **storm** makes every one of the worker's storm seats leave at once
  and reconnects them by the ``--reconnect`` policy: ``immediate``, or
  jittered exponential backoff (attempt k waits a uniform draw in
  ``[0, min(cap, base * 2**k))``, "full jitter");
* **probes** (the connect-rate study) open connections at a fixed rate that
  leave as soon as they are registered.

A failed attempt (refused, timed out, reset) is counted by its reason and
retried by the policy (``immediate`` retries after
:data:`IMMEDIATE_RETRY_S`, not to spin on a server that refuses); nothing
new is started once the last message was due.  A **quit** sends the
protocol's goodbye, closes the harness's side and reads (discarding) until
the server closes the connection, as a client that says goodbye does; a
**reset** closes with ``SO_LINGER`` 0, so the kernel sends a RST.

The connections' registrations come back through the registrar's hooks
(:class:`~bench.swarm.registrar.ChurnHooks`); what each churned seat's
connection was owed and got is :mod:`bench.swarm.memberships`'s.  The
server's join and leave notices are counted at the steady receivers
(:meth:`ChurnDriver.filter_block`), against the joins and leaves made.
"""

from __future__ import annotations

import heapq
import random
import re
import socket
import struct
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from bench.measure.integrity import IntegrityCounts, Window
from bench.measure.labelled import EncodedHistogram, Labelled
from bench.measure.stats import LatencyHistogram
from bench.swarm.connections import CLOSED, LEAVING, READY, Conn, Sockets
from bench.swarm.memberships import Memberships
from bench.swarm.messages import ChurnReport
from bench.swarm.plan import ClientSpec, Schedule, WorkerPlan
from bench.swarm.registrar import Registrar
from bench.swarm.timeline import MessageTimes
from bench.wire import Adapter
from bench.workload.membership import Leave, Membership

#: A connection whose quit was sent is closed after this long even if the
#: server never closes it (the server's own close normally comes within ms).
LEAVE_TIMEOUT_S = 5.0
#: No churn event in the last moments of the sends: the last replacements
#: are registered (and their notices delivered) while the traffic still runs.
CHURN_TAIL_S = 0.5
#: ``--reconnect immediate``: a failed attempt is retried after this, not at
#: once, so a server that refuses is not hammered in a tight loop.
IMMEDIATE_RETRY_S = 0.05
#: Probe connections opening at once, per worker (a descriptor each; the
#: worker's own limit is 20,000).
MAX_PROBES_INFLIGHT = 4096
#: Leaving connections are checked for their deadline this often.
LEAVING_CHECK_NS = 100_000_000

#: Kinds of connection the driver opens (connect latencies and failures are kept per kind).
CHURN, STORM, PROBE = "churn", "storm", "probe"
#: What the heap's entries do.
_LEAVE, _STORM, _CONNECT, _PROBE = range(4)

_LINGER_RESET = struct.pack("ii", 1, 0)


@dataclass(slots=True, eq=False)
class Seat:
    """A churned seat of this worker and its connection now."""

    spec: ClientSpec
    conn: Conn | None = None  #: its registered connection, or the one connecting
    gen: int = 0  #: replacements so far (new names: NAMErGEN)
    kind: str = CHURN  #: what its current reconnect is for
    attempt: int = 0  #: failed attempts of its current reconnect
    away_ns: int = 0  #: when it left (a storm's: time to register again)
    pending: bool = False  #: a reconnect is scheduled or connecting


def backoff_s(policy: str, attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Seconds before attempt ``attempt`` (0: the first reconnect) by ``policy``."""
    if policy == "immediate":
        return 0.0 if attempt == 0 else IMMEDIATE_RETRY_S
    return rng.uniform(0.0, min(cap_s, base_s * 2.0**attempt))


def failure_reason(reason: str, stem: str) -> str:
    """A failure's reason with the run's names in it (``STEM...``) as NAME:
    reasons are counted, not kept per connection, so "Name taken: cb7r3" and
    "Name taken: cb7r4" are one reason, "Name taken: NAME"."""
    if not stem:
        return reason
    return re.sub(re.escape(stem) + r"\S*", "NAME", reason)


class ChurnDriver:
    """Membership over time for one worker (see the module docstring)."""

    def __init__(self, plan: WorkerPlan, adapter: Adapter, registrar: Registrar, labelled: Labelled) -> None:
        membership = plan.workload.membership
        assert membership is not None
        self.plan = plan
        self.membership: Membership = membership
        self.churn = membership.churn
        self.registrar = registrar
        self.sockets: Sockets = registrar.sockets
        self.labelled = labelled
        self.quit_bytes = adapter.encode_quit()
        self.split_notices = adapter.split_notices if adapter.notices is not None else None
        self.strip_notices = adapter.strip_notices
        self.seats = {spec.cid: Seat(spec) for spec in plan.clients if spec.cid in membership.churned}
        self.rng = random.Random(membership.seed * 1_000_003 + plan.index)
        self.stem = plan.name_stem.encode()
        #: the run's churned seats' names, every worker's (their replacements'
        #: are NAMErK): whose notices are counted -- not a stalled client's,
        #: whatever the names (the harness's, or a --credentials file's)
        clients = plan.workload.clients
        self.seat_names = {clients[cid].name.encode() for cid in membership.churned if cid in clients}
        self.renamed = membership.churn.names == "new"  #: replacements are NAMErK
        self.probe_stem = self.stem + b"p"  #: connect probes' names
        self.heap: list[tuple[int, int, int, object]] = []
        self._order = 0
        self._events: Iterator[Leave] = iter(())
        self.book: Memberships | None = None
        self.stop_ns = 0  #: nothing new is started from here on (the last intended send)
        self.leaving: deque[tuple[int, Conn]] = deque()  #: (deadline, connection) of those whose quit was sent
        self._next_leaving_check = 0
        self.counting = False
        # what happened
        self.leaves: Counter[str] = Counter()
        self.replaced = self.skipped = self.probes = 0
        self.storm_seats = self.storm_left = self.storm_back = 0
        self.storm_at_ns = self.storm_last_back_ns = 0
        self.time_to_register = LatencyHistogram()
        self.attempts: Counter[str] = Counter()
        self.failures: dict[str, Counter[str]] = {}
        self.joins_made = self.leaves_made = 0
        self.notice_joins = self.notice_leaves = 0
        self.probes_inflight = 0
        registrar.hooks = self

    # -- the loop's hooks -----------------------------------------------------------

    def start(self, schedule: Schedule, times: MessageTimes | None) -> None:
        """Traffic begins: churn from the end of the warm-up, the storm at its time, probes."""
        self.book = Memberships(self.plan.workload, self.labelled, schedule, times, self.churn.leave_grace_s)
        for conn in self.registrar.receiver_conns:
            seat = self.seats.get(conn.spec.cid)
            if seat is not None:
                seat.conn = conn  # owed from the first message: no floor
        t0, churn = schedule.t0_ns, self.churn
        self.stop_ns = schedule.end_ns
        churn_until = (schedule.end_ns - t0) / 1e9 - CHURN_TAIL_S
        mine = self.seats
        self._events = (e for e in self.membership.events(churn_until) if e.seat in mine)
        self._push_next_event(t0)
        if churn.storm:
            self._push(t0 + int(churn.storm_at_s * 1e9), _STORM, None)
        if churn.probe_rate > 0:
            self._probe_t0 = schedule.measure_start_ns
            self._push_probe(self.plan.index)
        self.counting = True

    def due_ns(self) -> int | None:
        """When the driver next has something to do (None: nothing planned)."""
        if self.heap:
            return self.heap[0][0]
        return None

    def tick(self, now: int, between: Callable[[], None] | None = None) -> None:
        """Do what is due (calling ``between`` before each thing: the
        worker's sends due meanwhile); close leaving connections past their deadline."""
        heap = self.heap
        while heap and heap[0][0] <= now:
            if between is not None:
                between()
            _, _, what, arg = heapq.heappop(heap)
            if what == _LEAVE:
                assert isinstance(arg, Leave)
                self._churn_leave(arg, now)
            elif what == _CONNECT:
                assert isinstance(arg, Seat)
                self._connect(arg, now)
            elif what == _STORM:
                self._storm(now)
            else:
                assert isinstance(arg, int)
                self._probe(arg, now)
        leaving = self.leaving
        if leaving and now >= self._next_leaving_check:
            self._next_leaving_check = now + LEAVING_CHECK_NS
            while leaving and (leaving[0][1].state != LEAVING or now >= leaving[0][0]):
                _, conn = leaving.popleft()
                if conn.state != CLOSED:
                    self.sockets.drop(conn)

    def churning(self) -> int:
        """Connections still connecting or leaving."""
        return self.registrar.churn_inflight + sum(1 for _, conn in self.leaving if conn.state == LEAVING)

    # -- scheduling ----------------------------------------------------------------------

    def _push(self, due_ns: int, what: int, arg: object) -> None:
        self._order += 1
        heapq.heappush(self.heap, (due_ns, self._order, what, arg))

    def _push_next_event(self, t0: int) -> None:
        event = next(self._events, None)
        if event is not None:
            self._push(t0 + int(event.at_s * 1e9), _LEAVE, event)
            self._t0 = t0

    def _push_probe(self, k: int) -> None:
        due = self._probe_t0 + int(k * 1e9 / self.churn.probe_rate)
        if due < self.stop_ns - int(CHURN_TAIL_S * 1e9):
            self._push(due, _PROBE, k)

    def _reconnect(self, seat: Seat, kind: str, now: int, attempt: int = 0) -> None:
        """Schedule ``seat``'s (re)connect by the policy (attempt 0: the first)."""
        seat.pending = True
        seat.kind = kind
        seat.attempt = attempt
        policy = "immediate" if kind == CHURN and attempt == 0 else self.churn.reconnect
        delay = backoff_s(policy, attempt, self.churn.backoff_base_s, self.churn.backoff_cap_s, self.rng)
        self._push(now + int(delay * 1e9), _CONNECT, seat)

    # -- events --------------------------------------------------------------------------

    def _churn_leave(self, event: Leave, now: int) -> None:
        self._push_next_event(self._t0)
        seat = self.seats[event.seat]
        if seat.pending:
            self.skipped += 1  # still connecting from its last leave
            return
        conn = seat.conn
        if conn is not None and conn.state == READY:
            self.leaves[event.mode] += 1
            self._leave(seat, event.mode, now)
        elif conn is not None:
            self._forget(seat, now)  # the server closed it: its membership ends now
        seat.away_ns = now
        self._reconnect(seat, CHURN, now)

    def _storm(self, now: int) -> None:
        """Drop every storm seat of this worker at once; reconnect them by the policy."""
        self.storm_at_ns = now
        for cid in self.membership.storm_seats:
            seat = self.seats.get(cid)
            if seat is None:
                continue
            self.storm_seats += 1
            seat.away_ns = now
            if seat.pending:  # connecting (a churn replacement): its registration counts as back
                seat.kind = STORM
                continue
            conn = seat.conn
            if conn is not None and conn.state == READY:
                self.storm_left += 1
                self._leave(seat, self.membership.storm_mode(cid), now)
            elif conn is not None:
                self._forget(seat, now)
            self._reconnect(seat, STORM, now)

    def _connect(self, seat: Seat, now: int) -> None:
        if now >= self.stop_ns:
            seat.pending = False  # the run is over: not back
            return
        spec = seat.spec
        nodes = len(self.plan.addresses)
        if seat.kind == STORM and self.churn.storm_node is not None and nodes > 1:
            spec = replace(spec, node=(self.churn.storm_node + 1) % nodes)  # not back to the node that dropped it
        if self.churn.names == "new":
            seat.gen += 1
            spec = replace(spec, name=f"{spec.name}r{seat.gen}")
        self.attempts[seat.kind] += 1
        seat.conn = self.registrar.open(spec)

    def _probe(self, k: int, now: int) -> None:
        self._push_probe(k + self.plan.workers)
        if self.probes_inflight >= MAX_PROBES_INFLIGHT:
            self._failed_kind(PROBE, "harness: too many probes in flight")
            return
        spec = ClientSpec(
            -1 - k, f"{self.plan.name_stem}p{k}", receives=False, node=k % max(1, len(self.plan.addresses))
        )
        self.attempts[PROBE] += 1
        self.probes_inflight += 1
        self.registrar.open(spec)

    # -- leaving -----------------------------------------------------------------------

    def _leave(self, seat: Seat, mode: str, now: int) -> None:
        """``seat``'s registered connection leaves now by ``mode``; its membership is accounted."""
        conn = seat.conn
        assert conn is not None and self.book is not None
        self._forget(seat, now)
        self.leaves_made += 1
        self._close(conn, mode, now)

    def _forget(self, seat: Seat, now: int) -> None:
        """Account ``seat``'s connection's membership as ending now, and let it go."""
        conn = seat.conn
        assert conn is not None and self.book is not None
        self.book.close(conn, now)
        receivers = self.registrar.receiver_conns
        if conn in receivers:
            receivers.remove(conn)
        seat.conn = None

    def _close(self, conn: Conn, mode: str, now: int) -> None:
        """Quit (goodbye, close our side, read until the server closes) or reset (RST)."""
        if mode == "reset" or conn.state != READY:
            try:
                conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            except OSError:
                pass
            self.sockets.close(conn, None)
            return
        try:
            goodbye = self._goodbye(conn)
            if goodbye:
                conn.sock.send(goodbye)
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.sockets.close(conn, None)
            return
        conn.state = LEAVING
        if conn.writing:
            self.sockets.want_write(conn, False)
        self.leaving.append((now + int(LEAVE_TIMEOUT_S * 1e9), conn))

    def _goodbye(self, conn: Conn) -> bytes:
        """What a quit sends: the protocol's goodbye after what was still
        queued (a whole record, over TLS), and over TLS encrypted, then the
        close_notify alert."""
        out = bytes(conn.outbuf)
        conn.outbuf.clear()
        tls = conn.tls
        if tls is None:
            return out + self.quit_bytes
        return out + (tls.encrypt(self.quit_bytes) if self.quit_bytes else b"") + tls.close_notify()

    # -- the registrar's hooks ---------------------------------------------------------------

    def registered(self, conn: Conn, now: int) -> None:
        """A connection the driver opened is registered."""
        self.joins_made += 1
        cid = conn.spec.cid
        if cid < 0:  # a probe: timed, then it leaves at once
            self.probes_inflight -= 1
            self.probes += 1
            self.registrar.timed(PROBE).record(conn, now)
            mode = self.churn.mode if self.churn.mode != "mixed" else ("reset" if cid % 2 else "quit")
            self.leaves_made += 1
            self._close(conn, mode, now)
            return
        seat = self.seats[cid]
        assert self.book is not None
        self.registrar.timed(seat.kind).record(conn, now)
        seat.pending = False
        seat.conn = conn
        self.book.opened(conn, now)
        if seat.kind == STORM:
            self.storm_back += 1
            self.time_to_register.record((now - seat.away_ns) // 1000)
            self.storm_last_back_ns = max(self.storm_last_back_ns, now)
        else:
            self.replaced += 1

    def failed(self, conn: Conn, reason: str) -> None:
        """A connection the driver opened never got registered: counted, retried by the policy."""
        cid = conn.spec.cid
        if cid < 0:
            self.probes_inflight -= 1
            self._failed_kind(PROBE, reason)
            return
        seat = self.seats[cid]
        self._failed_kind(seat.kind, reason)
        seat.conn = None
        self._reconnect(seat, seat.kind, conn.opened_ns, seat.attempt + 1)

    def _failed_kind(self, kind: str, reason: str) -> None:
        """Count a failed attempt by its reason (see :func:`failure_reason`)."""
        reason = failure_reason(reason, self.plan.name_stem)
        got = self.failures.get(kind)
        if got is None:
            got = self.failures[kind] = Counter()
        got[reason] += 1

    # -- notices --------------------------------------------------------------------------------

    def filter_block(self, conn: Conn, block: bytes) -> bytes:
        """A registered connection's received lines without the server's join
        and leave notices; those about this run's churning names are counted
        at the steady receivers."""
        split = self.split_notices
        if split is None:
            return block
        if not (self.counting and conn.tracker is not None and conn.spec.cid not in self.seats):
            return self.strip_notices(block)  # most receivers: nothing to count, only to remove
        block, joins, leaves = split(block)
        if joins or leaves:
            churning = self._churning_name
            self.notice_joins += sum(map(churning, joins))
            self.notice_leaves += sum(map(churning, leaves))
        return block

    def _churning_name(self, name: bytes) -> bool:
        """A churned seat's name (or its replacement's, NAMErK), or a probe's;
        not a stalled client's (those leave when released)."""
        names = self.seat_names
        if name in names:
            return True
        if self.renamed:
            head, r, tail = name.rpartition(b"r")  # a replacement: its seat's name, "r", digits
            if r and tail.isdigit() and head in names:
                return True
        return name.startswith(self.probe_stem)

    # -- the end ----------------------------------------------------------------------------------

    def steady_received(self) -> int:
        """Deliveries (first arrivals) at the steady receivers so far: the drain's measure."""
        seats = self.seats
        return sum(c.tracker.received() for c in self.registrar.receiver_conns if c.tracker and c.spec.cid not in seats)

    def finish(self, sent: dict[int, int]) -> ChurnReport:
        """Account the memberships still open at the end (owed up to ``sent``), and report."""
        book = self.book
        self.counting = False
        self.heap.clear()
        if book is not None:
            receivers = self.registrar.receiver_conns
            for seat in self.seats.values():
                conn = seat.conn
                if conn is not None and conn.tracker is not None and conn in receivers:
                    book.close(conn, None, sent)
                    receivers.remove(conn)
        steady = sum(1 for c in self.registrar.receiver_conns if c.spec.cid not in self.seats and c.state == READY)
        return self._report(steady)

    def _report(self, steady: int) -> ChurnReport:
        book = self.book
        return ChurnReport(
            leaves=dict(self.leaves),
            replaced=self.replaced,
            skipped=self.skipped,
            storm_seats=self.storm_seats,
            storm_left=self.storm_left,
            storm_back=self.storm_back,
            storm_at_ns=self.storm_at_ns,
            storm_last_back_ns=self.storm_last_back_ns,
            time_to_register=EncodedHistogram.of(self.time_to_register),
            attempts=dict(self.attempts),
            failures={kind: dict(reasons) for kind, reasons in self.failures.items()},
            probes=self.probes,
            window=book.window if book is not None else Window(),
            labels={} if book is None else dict(book.labels),
            integrity=book.integrity if book is not None else IntegrityCounts(),
            by_pair={} if book is None else book.by_pair,
            lost_by_interval={} if book is None else dict(book.lost_by_interval),
            memberships=0 if book is None else book.closed,
            joins_made=self.joins_made,
            leaves_made=self.leaves_made,
            notice_receivers=steady if self.split_notices is not None else 0,
            notice_joins=self.notice_joins,
            notice_leaves=self.notice_leaves,
        )
