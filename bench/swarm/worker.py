"""One load-generator process: a non-blocking ``selectors`` loop over many
chat connections.

The parent (:mod:`bench.swarm`) starts P of these with ``multiprocessing``
and talks to each over a :class:`multiprocessing.connection.Connection`.  A
worker's life, driven by the parent's commands:

1. **connect** (at start): open its share of connections at the ramp rate,
   at most ``max_inflight`` registering at once, register each one as a real
   client does (the protocol adapter, :mod:`bench.wire.adapters`, says how: for our
   protocol wait for the prompt, send the name, wait for the welcome line;
   for IRC ``NICK``/``USER``, ``001``, ``JOIN``, end of ``NAMES``), then
   report ``ready``.
2. ``stall``: open its stalled clients (register, then never read again;
   small ``SO_RCVBUF``), report ``stalled``.
3. ``start``: the schedule.  Senders emit their probes at the intended send
   times (open loop: a late loop iteration sends everything due at once, and
   the probe carries the *intended* time, so lateness shows up as latency).
   Receivers measure every delivery.  ``progress`` goes to the parent a few
   times a second.
4. ``release``: close the stalled clients.
5. ``stop_sending``: stop writing; report what every sender fully handed to
   the kernel (``sent``).
6. ``finish``: with every sender's final count, compute the integrity
   counters and report the ``result`` (histogram encoded, counters).
7. ``exit``: close every socket and return.

The receive path handles a whole ``recv`` buffer per call
(:meth:`bench.measure.recorder.DeliveryRecorder.receive`: vectorised for big
buffers, a short per-line check for small ones), read into one reused
buffer.  A delivery's latency ends at the kernel's receive stamp of the
read (``--rx-clock kernel``, :mod:`bench.measure.rxstamp`) or at the read itself
(``--rx-clock read``); the harness's read delay is reported apart.

Protocols: the worker itself knows none.  The plan names one
(``WorkerPlan.protocol``) and :func:`bench.wire.adapters.get` gives the adapter
that frames what is sent, drives registration, and turns received lines
into what :class:`DeliveryRecorder` reads (for IRC: channel ``PRIVMSG`` lines
become chat lines, ``PING`` is answered with ``PONG``).
"""

from __future__ import annotations

import errno
import heapq
import logging
import os
import resource
import select
import selectors
import socket
import time
import traceback
from collections import Counter, deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from bench.measure import probe, rxstamp
from bench.measure.integrity import IntegrityCounts, IntegrityTracker
from bench.measure.recorder import DeliveryRecorder
from bench.measure.stats import LatencyHistogram
from bench.wire import adapters, irc
from server import protocol

log = logging.getLogger(__name__)

#: Bytes asked of the kernel per ``recv``: big enough that one call drains a
#: burst of fan-out lines, so the per-call costs are spread over many lines.
RECV_BYTES = 256 * 1024

#: Longest line a harness client accepts.  Chat lines stay under the
#: server's client-line limit plus the decoration a server line adds, but the
#: welcome line lists everyone online: with 10,000 clients that is ~10,000
#: names of up to 32 characters (4 bytes each in UTF-8) plus separators, far
#: past 4 KiB.  4 MiB covers that worst case; the decoder only holds a partial
#: line this long while such a line is actually arriving.
RECEIVER_LINE_LIMIT = 4 << 20

#: Seconds between ``progress`` reports to the parent while traffic runs.
PROGRESS_INTERVAL_S = 0.2

#: Within a long batch of socket events, look at the parent's commands this often.
HOUSEKEEPING_INTERVAL_NS = 20_000_000

#: Longest the loop sleeps in ``select`` with nothing scheduled, so commands
#: and registration deadlines are noticed promptly.
IDLE_WAIT_S = 0.05

#: Waits shorter than this (the next send is due soon) sleep to the
#: microsecond (``select`` on the epoll fd) instead of epoll's whole milliseconds.
PRECISE_WAIT_S = 0.01

#: Set to a directory to write each worker's cProfile stats there
#: (``swarm-worker-N.prof``), for profiling the receive path under load.
PROFILE_ENV = "CHATBENCH_SWARM_PROFILE"

_CONNECTING, _REGISTERING, _READY, _STALLED, _CLOSED = range(5)

#: ``out_lens`` entries at or above this are bytes that are not a chat message
#: (a ``PONG``): their length is the entry minus this, and they are not counted.
_CONTROL = 1 << 40


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """One connection the worker opens."""

    cid: int  #: harness-wide client id; a sender's id is the probe's SENDER field
    name: str
    receives: bool  #: measured receiver (its deliveries are counted)
    slot: int | None = None  #: sender index 0..S-1 in the schedule, None if it does not send


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    index: int
    host: str
    port: int
    clients: tuple[ClientSpec, ...]
    stalled: tuple[ClientSpec, ...]
    #: sender id -> chat name, to check that the server attributed each line
    #: to the right sender.
    sender_names: dict[int, str]
    payload_bytes: int
    ramp_per_s: float = 0.0  #: this worker's connections per second; 0 = no limit
    max_inflight: int = 64  #: registrations in progress at once
    connect_timeout_s: float = 30.0
    stalled_rcvbuf: int = 4096
    #: Spin (poll without sleeping) when the next send is due within this many
    #: microseconds; 0 never spins.  Without spinning the loop sleeps to the
    #: microsecond (see :data:`PRECISE_WAIT_S`) and a send is late by the
    #: kernel's wake-up time, typically tens of microseconds (which shows in
    #: the measured latency and in ``send_lag``).
    spin_us: int = 0
    protocol: str = "chat"  #: :data:`bench.wire.adapters.PROTOCOLS`
    #: ACK every read at once (``TCP_QUICKACK``): a server that does not set
    #: ``TCP_NODELAY`` then is not held up by Nagle waiting for our delayed ACKs.
    quickack: bool = False
    #: Which clock ends a delivery's latency: ``"kernel"`` (default) is the time
    #: the kernel queued the bytes on the receiving socket (``SO_TIMESTAMPNS``),
    #: so the harness's own delay in reading does not count as server latency;
    #: ``"read"`` is ``time.monotonic_ns()`` right after ``recv`` returned.
    #: Either way the start is the *intended* send time.  See :data:`RX_CLOCKS`.
    rx_clock: str = "kernel"


#: ``--rx-clock`` choices.  ``kernel``: for TCP the kernel stamps each
#: ``recvmsg`` with the arrival time of the *last* segment it copied, so a
#: line from an earlier segment of the same read is stamped late, never early:
#: the measured latency stays an upper bound of the true one, and at most the
#: harness's read delay above it.  That delay is measured on its own
#: (``receive_lag_us``: read time minus kernel time, once per read).
RX_CLOCKS = ("kernel", "read")


@dataclass(frozen=True, slots=True)
class Schedule:
    """What the parent sends with ``start``: the open-loop timetable.

    Global message ``m`` (0 <= m < total) is sent by sender slot ``m % senders``
    with sequence number ``m // senders`` at ``t0_ns + m * 1e9 / rate``
    (all at ``t0_ns`` when ``rate`` is 0: a burst).  Messages with
    ``m < warmup`` are the warm-up and are not measured.
    """

    t0_ns: int
    rate: float
    total: int
    senders: int
    warmup: int
    receivers_present: int

    def intended_ns(self, m: int) -> int:
        if self.rate <= 0:
            return self.t0_ns
        return self.t0_ns + int(m * 1_000_000_000 / self.rate)

    @property
    def measure_start_ns(self) -> int:
        return self.intended_ns(self.warmup)

    @property
    def end_ns(self) -> int:
        """Intended time of the last message."""
        return self.intended_ns(max(0, self.total - 1))

    def messages_of(self, slot: int) -> int:
        if slot >= self.total:
            return 0
        return (self.total - slot + self.senders - 1) // self.senders


@dataclass(slots=True)
class _Conn:
    spec: ClientSpec
    sock: socket.socket
    fd: int = -1
    state: int = _CONNECTING
    deadline_ns: int = 0
    decoder: adapters.Decoder | None = None
    registration: adapters.Registration | None = None
    tracker: IntegrityTracker | None = None
    # sending
    outbuf: bytearray = field(default_factory=bytearray)
    out_lens: deque[int] = field(default_factory=deque)
    out_head_done: int = 0  #: bytes of out_lens[0] already written
    next_seq: int = 0
    sent: int = 0
    measured_sent: int = 0
    writing: bool = False
    end_reason: str | None = None


def raise_nofile_limit() -> int:
    """Lift the soft open-files limit to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (ValueError, OSError):
            pass
    return soft


class Worker:
    def __init__(self, plan: WorkerPlan, ctl: Connection) -> None:
        self.plan = plan
        self.ctl = ctl
        self.sel = selectors.DefaultSelector()
        self.conns: dict[int, _Conn] = {}  # fd -> conn
        self.pending: deque[ClientSpec] = deque(plan.clients)
        self.inflight = 0
        self.registered: list[int] = []
        #: every registered connection that sends / measures, open or closed since
        self.sender_conns: list[_Conn] = []
        self.receiver_conns: list[_Conn] = []
        self.failures: Counter[str] = Counter()
        self.disconnects: Counter[str] = Counter()
        self.stalled_conns: list[_Conn] = []
        self.connecting_stalled = False
        self.ready_sent = False
        self.next_connect_ns = 0
        # traffic
        self.schedule: Schedule | None = None
        self.heap: list[tuple[int, int, _Conn]] = []  # (due_ns, global m, sender)
        self.sending = False
        self.adapter: adapters.Adapter = (
            adapters.ChatAdapter(RECEIVER_LINE_LIMIT) if plan.protocol == "chat" else adapters.get(plan.protocol)
        )
        self.line_errors = self.adapter.line_errors
        self.quickack = plan.quickack and hasattr(socket, "TCP_QUICKACK")
        #: received lines go through the adapter first (None: they already are chat lines)
        self.translate = self.adapter.incoming if self.adapter.translates else None
        #: IRC's whole-buffer translation (None for other protocols)
        self.irc_blocks = self.adapter.translate_block if isinstance(self.adapter, adapters.IrcAdapter) else None
        self.recorder = DeliveryRecorder(plan.sender_names)
        self.send_lag = LatencyHistogram()
        #: kernel clock: read time minus the kernel's arrival stamp, once per read (us)
        self.receive_lag = LatencyHistogram()
        self.unstamped_reads = 0  #: kernel clock asked for, but a read came without a stamp
        self.rx_lags: list[int] = []  #: not yet in receive_lag (added each housekeeping round)
        self.kernel_clock = plan.rx_clock == "kernel" and rxstamp.supported()
        #: CLOCK_REALTIME minus CLOCK_MONOTONIC (ns), refreshed every housekeeping
        #: round: the kernel stamps are realtime, the probes monotonic.
        self.realtime_offset_ns = rxstamp.realtime_offset_ns()
        self.bytes_in = 0
        self.recv_buffer = memoryview(bytearray(RECV_BYTES))
        self.recv_views = [self.recv_buffer]
        self.next_progress_ns = 0
        self.done = False
        self.payloads: dict[int, str] = {}
        self.next_deadline_check_ns = 0
        self.next_housekeeping_ns = 0

    # -- main loop ------------------------------------------------------------

    def run(self) -> None:
        self.sel.register(self.ctl.fileno(), selectors.EVENT_READ, None)
        self.next_connect_ns = time.monotonic_ns()
        epoll_fd = [self.sel.fileno()]
        precise_wait = PRECISE_WAIT_S if epoll_fd[0] < 1024 else 0.0  # select()'s FD_SETSIZE
        while not self.done:
            timeout = self._timeout()
            if 0 < timeout < precise_wait:
                # epoll sleeps in whole milliseconds (rounded up), so a send due
                # in 0.3 ms would go out ~1 ms late.  select() on the epoll fd
                # itself sleeps to the microsecond and still wakes on any socket
                # event; the events are then fetched without waiting.
                select.select(epoll_fd, (), (), timeout)
                timeout = 0
            for key, mask in self.sel.select(timeout):
                conn = key.data
                if conn is None:
                    while not self.done and self.ctl.poll():
                        self._command(self.ctl.recv())
                    continue
                if mask & selectors.EVENT_READ and conn.state != _CLOSED:
                    self._readable(conn)
                if mask & selectors.EVENT_WRITE and conn.state != _CLOSED:
                    self._writable(conn)
                # One batch of events can take long under a backlog (every ready
                # socket drained once).  Sends due meanwhile go out now, and the
                # parent's commands and progress reports are seen every few ms,
                # so neither pacing nor control waits for receive work.
                t = time.monotonic_ns()
                if self.sending and self.heap and self.heap[0][0] <= t:
                    self._emit_due(t)
                if t >= self.next_housekeeping_ns:
                    self.next_housekeeping_ns = t + HOUSEKEEPING_INTERVAL_NS
                    self._housekeeping_clock()
                    while not self.done and self.ctl.poll():
                        self._command(self.ctl.recv())
                    if self.schedule is not None and t >= self.next_progress_ns:
                        self._report_progress(t)
                    if self.done:
                        break
            now = time.monotonic_ns()
            if self.pending and self.inflight < self.plan.max_inflight:
                self._open_more(now)
            if self.inflight and now >= self.next_deadline_check_ns:
                self.next_deadline_check_ns = now + 100_000_000
                self._check_deadlines(now)
            if not self.ready_sent and not self.pending and not self.inflight:
                self._report_ready()
            if self.sending and self.heap and self.heap[0][0] <= now:
                self._emit_due(now)
            if self.schedule is not None and now >= self.next_progress_ns:
                self._report_progress(now)
            if now >= self.next_housekeeping_ns:
                self.next_housekeeping_ns = now + HOUSEKEEPING_INTERVAL_NS
                self._housekeeping_clock()
        self._close_all()

    def _housekeeping_clock(self) -> None:
        self.realtime_offset_ns = rxstamp.realtime_offset_ns()
        if self.rx_lags:
            self.receive_lag.record_many(self.rx_lags)
            self.rx_lags = []

    def _timeout(self) -> float:
        now = time.monotonic_ns()
        wait_ns = int(IDLE_WAIT_S * 1e9)
        if self.pending and self.inflight < self.plan.max_inflight:
            wait_ns = min(wait_ns, max(0, self.next_connect_ns - now))
        if self.sending and self.heap:
            due = self.heap[0][0] - now
            if due <= self.plan.spin_us * 1000:
                return 0.0
            wait_ns = min(wait_ns, due)
        if self.schedule is not None:
            wait_ns = min(wait_ns, max(0, self.next_progress_ns - now))
        return max(0.0, wait_ns / 1e9)

    # -- commands ---------------------------------------------------------------

    def _command(self, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == "stall":
            self.connecting_stalled = True
            for spec in self.plan.stalled:
                self._connect(spec, stalled=True)
            self._maybe_stalled_done()
        elif kind == "start":
            self._start(msg[1])
        elif kind == "release":
            for conn in self.stalled_conns:
                self._close(conn, None)
            self.stalled_conns.clear()
        elif kind == "stop_sending":
            self.sending = False
            sent = {c.spec.cid: c.sent for c in self._senders()}
            measured = {c.spec.cid: c.measured_sent for c in self._senders()}
            unsent_bytes = sum(len(c.outbuf) for c in self._senders())
            self.ctl.send(("sent", sent, measured, unsent_bytes))
        elif kind == "finish":
            self.ctl.send(("result", self._result(msg[1])))
            self.schedule = None  # no more progress reports
        elif kind == "exit":
            self.done = True
        else:
            raise ValueError(f"unknown command {kind!r}")

    def _senders(self) -> list[_Conn]:
        return self.sender_conns

    # -- connecting and registration ------------------------------------------

    def _open_more(self, now: int) -> None:
        ramp = self.plan.ramp_per_s
        interval = int(1e9 / ramp) if ramp > 0 else 0
        while self.pending and self.inflight < self.plan.max_inflight and now >= self.next_connect_ns:
            self._connect(self.pending.popleft(), stalled=False)
            if interval:
                # Never bank more than one interval of credit after a pause.
                self.next_connect_ns = max(self.next_connect_ns + interval, now - interval)

    def _connect(self, spec: ClientSpec, *, stalled: bool) -> None:
        sock = socket.socket(socket.AF_INET6 if ":" in self.plan.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if stalled:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.plan.stalled_rcvbuf)
        elif self.kernel_clock and spec.receives:
            rxstamp.enable(sock)
        conn = _Conn(spec=spec, sock=sock, fd=sock.fileno())
        conn.decoder = self.adapter.decoder()
        conn.registration = self.adapter.registration(spec.name)
        conn.deadline_ns = time.monotonic_ns() + int(self.plan.connect_timeout_s * 1e9)
        if stalled:
            conn.state = _CONNECTING
            conn.end_reason = "stalled"
        self.inflight += 1
        err = sock.connect_ex((self.plan.host, self.plan.port))
        if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            self.inflight -= 1
            self.failures[f"connect: {errno.errorcode.get(err, err)}"] += 1
            sock.close()
            self._maybe_stalled_done()
            return
        self.conns[conn.fd] = conn
        self.sel.register(sock, selectors.EVENT_WRITE, conn)

    def _fail(self, conn: _Conn, reason: str) -> None:
        self.failures[reason] += 1
        self.inflight -= 1
        self._drop(conn)
        self._maybe_stalled_done()

    def _check_deadlines(self, now: int) -> None:
        for conn in [c for c in self.conns.values() if c.state in (_CONNECTING, _REGISTERING)]:
            if now > conn.deadline_ns:
                self._fail(conn, "registration timeout")

    def _registration_line(self, conn: _Conn, line: bytes) -> None:
        assert conn.registration is not None
        step = conn.registration.line(line)
        if step.send:
            self._send_now(conn, step.send)
            if conn.state == _CLOSED:
                return
        if step.error is not None:
            self._fail(conn, step.error)
        elif step.done:
            self._registered(conn)

    def _registered(self, conn: _Conn) -> None:
        self.inflight -= 1
        if conn.end_reason == "stalled":
            conn.state = _STALLED
            self.sel.unregister(conn.sock)  # never read again
            self.stalled_conns.append(conn)
            self._maybe_stalled_done()
            return
        conn.state = _READY
        if conn.spec.receives:
            conn.tracker = IntegrityTracker()
            self.receiver_conns.append(conn)
        if conn.spec.slot is not None:
            self.sender_conns.append(conn)
        self.registered.append(conn.spec.cid)

    def _maybe_stalled_done(self) -> None:
        if self.connecting_stalled and not any(c.end_reason == "stalled" for c in self._registering()):
            self.connecting_stalled = False
            self.ctl.send(("stalled", len(self.stalled_conns), dict(self.failures)))

    def _registering(self) -> list[_Conn]:
        return [c for c in self.conns.values() if c.state in (_CONNECTING, _REGISTERING)]

    def _report_ready(self) -> None:
        self.ready_sent = True
        self.ctl.send(("ready", list(self.registered), dict(self.failures)))

    # -- traffic ---------------------------------------------------------------

    def _start(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.recorder.measure_start_ns = schedule.measure_start_ns
        for conn in self.conns.values():
            slot = conn.spec.slot
            if conn.state == _READY and slot is not None and slot < schedule.total:
                self.heap.append((schedule.intended_ns(slot), slot, conn))
        heapq.heapify(self.heap)
        self.sending = True
        self.next_progress_ns = time.monotonic_ns()

    def _payload(self, cid: int, seq: int) -> str:
        # make_payload varies only with (sender * 7 + seq) mod its alphabet
        # size (62); cache by that to keep the send path cheap.
        key = (cid * 7 + seq) % 62
        payload = self.payloads.get(key)
        if payload is None:
            payload = self.payloads[key] = probe.make_payload(self.plan.payload_bytes, cid, seq)
        return payload

    def _emit_due(self, now: int) -> None:
        schedule = self.schedule
        assert schedule is not None
        heap = self.heap
        senders = schedule.senders
        total = schedule.total
        warmup = schedule.warmup
        encode_chat = self.adapter.encode_chat
        dirty: list[_Conn] = []
        lags: list[int] = []
        while heap and heap[0][0] <= now:
            due, m, conn = heapq.heappop(heap)
            if conn.state != _READY:
                continue
            seq = m // senders
            cid = conn.spec.cid
            text = probe.encode_probe(cid, seq, due, self._payload(cid, seq))
            data = encode_chat(text)
            if not conn.outbuf:
                dirty.append(conn)
            conn.outbuf += data
            conn.out_lens.append(len(data) if m >= warmup else -len(data))
            conn.next_seq = seq + 1
            lags.append((now - due) // 1000)
            nxt = m + senders
            if nxt < total:
                heapq.heappush(heap, (schedule.intended_ns(nxt), nxt, conn))
        if lags:
            self.send_lag.record_many(lags)
        for conn in dirty:
            if not conn.writing:
                self._flush(conn)

    def _flush(self, conn: _Conn) -> None:
        if not conn.outbuf:
            return
        try:
            n = conn.sock.send(conn.outbuf)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError as exc:
            self._close(conn, f"send: {exc.strerror or exc}")
            return
        if n:
            del conn.outbuf[:n]
            self._account_sent(conn, n)
        want_write = bool(conn.outbuf)
        if want_write != conn.writing:
            conn.writing = want_write
            self.sel.modify(conn.sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if want_write else 0), conn)

    def _account_sent(self, conn: _Conn, n: int) -> None:
        lens = conn.out_lens
        done = conn.out_head_done + n
        while lens:
            size = lens[0]
            length = size - _CONTROL if size >= _CONTROL else abs(size)
            if done < length:
                break
            done -= length
            lens.popleft()
            if size < _CONTROL:
                conn.sent += 1
                if size > 0:
                    conn.measured_sent += 1
        conn.out_head_done = done

    def _send_control(self, conn: _Conn, data: bytes) -> None:
        """Protocol replies during traffic (``PONG``): queued behind any
        buffered messages, not counted as messages."""
        if conn.state != _READY:
            return
        conn.outbuf += data
        conn.out_lens.append(_CONTROL + len(data))
        if not conn.writing:
            self._flush(conn)

    def _send_now(self, conn: _Conn, data: bytes) -> None:
        """Registration lines: tiny, sent before any traffic; queue if needed."""
        conn.outbuf += data
        try:
            n = conn.sock.send(conn.outbuf)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError as exc:
            self._fail(conn, f"send: {exc.strerror or exc}")
            return
        del conn.outbuf[:n]
        if conn.outbuf:
            conn.writing = True
            self.sel.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)

    # -- socket events ------------------------------------------------------------

    def _writable(self, conn: _Conn) -> None:
        if conn.state == _CONNECTING:
            err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._fail(conn, f"connect: {errno.errorcode.get(err, str(err))}")
                return
            conn.state = _REGISTERING
            self.sel.modify(conn.sock, selectors.EVENT_READ, conn)
            assert conn.registration is not None
            first = conn.registration.connected()
            if first:
                self._send_now(conn, first)
            return
        if conn.state == _REGISTERING:
            # Only registration bytes can be queued here.
            try:
                n = conn.sock.send(conn.outbuf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._fail(conn, f"send: {exc.strerror or exc}")
                return
            del conn.outbuf[:n]
            if not conn.outbuf:
                conn.writing = False
                self.sel.modify(conn.sock, selectors.EVENT_READ, conn)
            return
        if self.sending:
            self._flush(conn)
        else:
            conn.writing = False
            self.sel.modify(conn.sock, selectors.EVENT_READ, conn)

    def _readable(self, conn: _Conn) -> None:
        stamp = 0
        stamped = self.kernel_clock and conn.state == _READY and conn.tracker is not None
        try:
            # Into one reused buffer: a fresh 256 KiB bytes object per recv is
            # an mmap + mremap + munmap (and a TLB shootdown) every time.
            if stamped:
                n, stamp = rxstamp.recv_stamped(conn.sock, self.recv_views, self.realtime_offset_ns)
            else:
                n = conn.sock.recv_into(self.recv_buffer)
            data = self.recv_buffer[:n].tobytes()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            reason = f"recv: {exc.strerror or exc}"
            if conn.state == _READY:
                self._close(conn, reason)
            else:
                self._fail(conn, reason)
            return
        now = time.monotonic_ns()
        if stamped and not stamp:
            self.unstamped_reads += 1
        if stamp:
            # The kernel's arrival time, on the monotonic clock; never later
            # than the read (a clock-offset error of a few us must not make
            # a delivery look older than it can be).
            lag = now - stamp
            if lag > 0:
                self.rx_lags.append(lag // 1000)
                now = stamp
            else:
                self.rx_lags.append(0)
        if self.quickack:
            # Re-arm after every read (the kernel drops back to delayed ACKs).
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        if not data:
            if conn.state == _READY:
                self._close(conn, "closed by server")
            else:
                self._fail(conn, "closed during registration")
            return
        self.bytes_in += len(data)
        decoder = conn.decoder
        assert decoder is not None
        if conn.state != _READY:
            try:
                lines = decoder.feed(data)
            except self.line_errors:
                self._fail(conn, "line too long")
                return
            for i, line in enumerate(lines):
                self._registration_line(conn, line)
                if conn.state == _READY:
                    # Lines after the welcome are traffic.
                    self._traffic(conn, lines[i + 1 :], now)
                    return
                if conn.state in (_STALLED, _CLOSED):
                    return
            return
        if conn.tracker is None and self.translate is None:
            return  # a sender that is not a measured receiver: read and discard
        if self.translate is None and conn.tracker is not None and isinstance(decoder, protocol.LineDecoder):
            # Our own protocol: the recorder takes the whole recv buffer at once
            # (vectorised when it is all probes).
            try:
                other = self.recorder.receive(decoder, conn.tracker, conn.spec.cid, data, now)
            except self.line_errors:
                self._close(conn, "line too long")
                return
            self._controls(conn, other)
            return
        if self.irc_blocks is not None and conn.tracker is not None and isinstance(decoder, irc.LineSplitter):
            # IRC: a block of nothing but channel messages is translated in one
            # regex pass and recorded like our own protocol's buffers.
            try:
                block = decoder.feed_block(data)
            except self.line_errors:
                self._close(conn, "line too long")
                return
            chat = self.irc_blocks(block)
            if chat is not None:
                self._controls(conn, self.recorder.receive_block(conn.tracker, conn.spec.cid, chat, now))
                return
            self._traffic(conn, irc.split_block(block), now)
            return
        try:
            lines = decoder.feed(data)
        except self.line_errors:
            self._close(conn, "line too long")
            return
        self._traffic(conn, lines, now)

    def _traffic(self, conn: _Conn, lines: list[bytes], now: int) -> None:
        """The hook between the socket and the recorder: the adapter (if it
        translates) classifies the lines first and answers what needs it."""
        if not lines:
            return
        if self.translate is not None:
            incoming = self.translate(lines)
            if incoming.reply:
                self._send_control(conn, incoming.reply)
            if incoming.ended is not None:
                conn.end_reason = incoming.ended
            lines = incoming.lines
            if not lines:
                return
        if conn.tracker is None:
            return
        self._controls(conn, self.recorder.feed(conn.tracker, conn.spec.cid, lines, now))

    def _controls(self, conn: _Conn, texts: list[str]) -> None:
        """Lines the recorder did not take: the adapter says if one ends the connection."""
        for text in texts:
            reason = self.adapter.control(text)
            if reason is not None:
                conn.end_reason = reason

    # -- closing ------------------------------------------------------------------

    def _drop(self, conn: _Conn) -> None:
        conn.state = _CLOSED
        self.conns.pop(conn.fd, None)
        try:
            self.sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()

    def _close(self, conn: _Conn, reason: str | None) -> None:
        """End a registered connection; ``reason`` None when the harness chose to."""
        if conn.state == _CLOSED:
            return
        if reason is not None:
            self.disconnects[conn.end_reason or reason] += 1
        if conn.state == _STALLED:  # not in the selector any more
            conn.state = _CLOSED
            self.conns.pop(conn.fd, None)
            conn.sock.close()
            return
        self._drop(conn)

    def _close_all(self) -> None:
        for conn in list(self.conns.values()):
            self._drop(conn)
        for conn in self.stalled_conns:
            conn.sock.close()
        self.sel.close()

    # -- reporting --------------------------------------------------------------------

    def _expected_all(self) -> int:
        schedule = self.schedule
        if schedule is None:
            return 0
        total = 0
        for conn in self._senders():
            others = schedule.receivers_present - (1 if conn.spec.receives else 0)
            total += conn.sent * others
        return total

    def _report_progress(self, now: int) -> None:
        self.next_progress_ns = now + int(PROGRESS_INTERVAL_S * 1e9)
        schedule = self.schedule
        assert schedule is not None
        # Messages live senders still have to hand to the kernel (buffered or not yet due).
        pending = sum(
            schedule.messages_of(c.spec.slot) - c.sent
            for c in self.sender_conns
            if c.state == _READY and c.spec.slot is not None
        )
        self.ctl.send(
            (
                "progress",
                {
                    "t_ns": now,
                    "delivered": self.recorder.delivered_all,
                    "expected": self._expected_all(),
                    "sent": sum(c.sent for c in self._senders()),
                    "pending": pending,
                    "disconnects": sum(self.disconnects.values()),
                },
            )
        )

    def _result(self, sent: dict[int, int]) -> dict[str, Any]:
        self._housekeeping_clock()
        rec = self.recorder
        counts = IntegrityCounts()
        receivers = self.receiver_conns
        for conn in receivers:
            assert conn.tracker is not None
            counts.add(conn.tracker.finish(sent, skip_sender=conn.spec.cid))
        return {
            "worker": self.plan.index,
            "histogram": rec.hist.encode(),
            "clamped": rec.hist.clamped,
            "send_lag_histogram": self.send_lag.encode(),
            "send_lag_clamped": self.send_lag.clamped,
            "receive_lag_histogram": self.receive_lag.encode(),
            "receive_lag_clamped": self.receive_lag.clamped,
            "rx_clock": "kernel" if self.kernel_clock else "read",
            "unstamped_reads": self.unstamped_reads,
            "delivered_all": rec.delivered_all,
            "delivered_measured": rec.delivered_measured,
            "last_measured_recv_ns": rec.last_measured_recv_ns,
            "integrity": counts.as_dict(),
            "echoes": rec.echoes,
            "lines": rec.lines,
            "bytes_in": self.bytes_in,
            "disconnects": dict(self.disconnects),
            "receivers": len(receivers),
        }


def worker_main(plan: WorkerPlan, ctl: Connection) -> None:
    """Entry point of a worker process."""
    raise_nofile_limit()
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
            ctl.send(("error", plan.index, traceback.format_exc()))
        except OSError:
            pass
        raise
    finally:
        ctl.close()
