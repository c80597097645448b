"""The raw-socket swarm: honest fan-out latency and throughput.

``python -m bench.swarm --help`` for the command line; from Python::

    from bench.swarm import SwarmConfig, run_swarm
    doc = run_swarm(SwarmConfig(clients=100, rate=1000, duration_s=5))
    doc["latency_us"]["p99_us"], doc["deliveries"]["delivered_ratio"]

One run: start the target (by default this project's server as a
subprocess), spread the connections over P worker processes
(:mod:`bench.swarm.worker`), register them all, optionally add *stalled* clients
that never read, then drive open-loop traffic: global message ``m`` is due
at ``t0 + m / rate`` from sender ``m % S`` (all at ``t0`` with ``rate == 0``,
a burst).  Every probe carries its *intended* send time, so latency =
receive time - intended time and a stalled server or a late sender shows up
as latency (no coordinated omission).  The first ``warmup`` seconds of
messages are sent but not measured.  After the last message the swarm waits
until every expected delivery arrived (or the drain timeout), then collects
the workers' histograms (merged exactly), delivery counts and integrity
counters, and returns one JSON-ready document (``docs/results.md``).

Clients and roles: ``--clients N`` connections are the *receivers*; the
first ``S`` of them also send (``--senders``).  Our server does not echo a
message to its sender, so each message is expected at ``N - 1`` receivers.
With ``--dedicated-senders`` the S senders are extra connections that read
and discard what they get without measuring it; each message is then
expected at all ``N`` receivers.  *Stalled* clients (``--stalled-clients``)
register, then never read; they are neither senders nor receivers, and are
closed when the last message's send time has passed.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import os
import secrets
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, TextIO

from bench import results
from bench.measure import probe
from bench.measure.integrity import IntegrityCounts
from bench.measure.sampler import DEFAULT_INTERVAL_S, ResourceSampler
from bench.measure.stats import LatencyHistogram
from bench.results.machine import environment
from bench.swarm.worker import ClientSpec, Schedule, WorkerPlan, raise_nofile_limit, worker_main
from bench.targets import Target, TargetError, make_target, target_protocol
from bench.wire import adapters

#: Default senders when ``--senders`` is not given (capped at the client count).
DEFAULT_SENDERS = 10
#: Seconds between the ``start`` command and the first intended send, so
#: every worker has the schedule before it begins.
START_LEAD_S = 0.2
#: Runs longer than this (seconds) show a progress line on stderr.
PROGRESS_AFTER_S = 2.0
#: Name prefix of harness clients; a random tag per run keeps names unique.
NAME_PREFIX = "cb"


class SwarmError(Exception):
    """The run could not be carried out; the message says why."""


@dataclass(frozen=True)
class SwarmConfig:
    """Everything one run needs.  Times in seconds, rates per second."""

    clients: int = 100
    senders: int | None = None  #: default min(clients, DEFAULT_SENDERS)
    dedicated_senders: bool = False
    stalled_clients: int = 0
    stalled_rcvbuf: int = 4096
    rate: float = 1000.0  #: total messages/s over all senders; 0 = one burst of ``messages``
    messages: int | None = None  #: measured messages; default rate * duration_s
    duration_s: float = 5.0
    warmup_s: float = 1.0
    payload_bytes: int = 64
    workers: int | None = None  #: default: one per CPU but one, which the server needs
    ramp_per_s: float = 2000.0  #: connections per second over all workers; 0 = no limit
    connect_timeout_s: float = 30.0
    drain_timeout_s: float = 10.0
    sample_interval_s: float = DEFAULT_INTERVAL_S
    spin_us: int = 0
    target: str = "embedded"
    protocol: str | None = None  #: HOST:PORT target: chat (default) or irc; named targets know theirs
    connect_batch: int | None = None  #: registrations in flight over all workers; default: the target's
    quickack: bool = False  #: receivers ACK every read at once (TCP_QUICKACK)
    #: where a delivery's latency ends: the kernel's arrival stamp or the read (worker.RX_CLOCKS)
    rx_clock: str = "kernel"
    fanout: str | None = None  #: embedded only: --fanout
    send_queue_bytes: int | None = None  #: embedded only: --send-queue-bytes
    server_args: tuple[str, ...] = ()  #: embedded only: more server options, verbatim
    server_pid: int | None = None  #: external target: process to sample
    progress: bool = True  #: progress line on stderr for long runs
    label: str | None = None

    def __post_init__(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ValueError(msg)

        need(self.clients >= 1, "--clients must be at least 1")
        need(self.senders is None or self.senders >= 1, "--senders must be at least 1")
        if not self.dedicated_senders:
            need(self.sender_count <= self.clients, "--senders cannot exceed --clients (or use --dedicated-senders)")
            need(self.clients >= 2, "with senders among the clients, at least 2 clients are needed")
        need(self.stalled_clients >= 0, "--stalled-clients must be >= 0")
        need(self.rate >= 0, "--rate must be >= 0")
        need(self.rate > 0 or (self.messages or 0) > 0, "--rate 0 (a burst) needs --messages M")
        need(self.messages is None or self.messages >= 1, "--messages must be at least 1")
        need(self.messages is not None or self.duration_s > 0, "--duration must be positive")
        need(self.warmup_s >= 0, "--warmup must be >= 0")
        need(self.payload_bytes >= 0, "--payload must be >= 0")
        try:
            proto = self.protocol_name
        except TargetError as exc:
            raise ValueError(str(exc)) from None
        sample = probe.encode_probe(10**6, 10**9, time.monotonic_ns(), "x" * self.payload_bytes)
        why = adapters.get(proto).check_text(sample)
        need(why is None, f"--payload {self.payload_bytes} is too big for the {proto} protocol: {why}")
        need(self.connect_batch is None or self.connect_batch >= 1, "--connect-batch must be at least 1")
        need(self.workers is None or self.workers >= 1, "--workers must be at least 1")
        need(self.ramp_per_s >= 0, "--ramp must be >= 0")
        need(self.connect_timeout_s > 0, "--connect-timeout must be positive")
        need(self.drain_timeout_s >= 0, "--drain-timeout must be >= 0")
        need(self.sample_interval_s > 0, "--sample-interval must be positive")

    @property
    def protocol_name(self) -> str:
        """The protocol the target speaks (``chat`` or ``irc``)."""
        return target_protocol(self.target, self.protocol)

    @property
    def sender_count(self) -> int:
        return self.senders if self.senders is not None else min(self.clients, DEFAULT_SENDERS)

    @property
    def worker_count(self) -> int:
        total = self.clients + (self.sender_count if self.dedicated_senders else 0)
        # The server always runs on this machine too (loopback only): leave it a CPU.
        default = max(1, (os.cpu_count() or 2) - 1)
        return max(1, min(self.workers or default, total))

    @property
    def warmup_messages(self) -> int:
        return round(self.warmup_s * self.rate) if self.rate > 0 else 0

    @property
    def measured_messages(self) -> int:
        if self.messages is not None:
            return self.messages
        return max(1, round(self.duration_s * self.rate))

    @property
    def all_server_args(self) -> tuple[str, ...]:
        args: list[str] = []
        if self.fanout is not None:
            args += ["--fanout", self.fanout]
        if self.send_queue_bytes is not None:
            args += ["--send-queue-bytes", str(self.send_queue_bytes)]
        return (*args, *self.server_args)

    def parameters(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("progress")
        d["senders"] = self.sender_count
        d["workers"] = self.worker_count
        d["warmup_messages"] = self.warmup_messages
        d["measured_messages"] = self.measured_messages
        d["server_args"] = list(self.all_server_args)
        d["senders_receive"] = not self.dedicated_senders
        d["protocol"] = self.protocol_name
        return d


# ---------------------------------------------------------------------------
# progress output
# ---------------------------------------------------------------------------


class _Progress:
    """One status line on stderr, shown once a run is past a few seconds."""

    def __init__(self, enabled: bool, stream: TextIO = sys.stderr) -> None:
        self.enabled = enabled
        self.stream = stream
        self.t0 = time.monotonic()
        self.tty = stream.isatty()
        self.last = 0.0
        self.shown = False

    def update(self, text: str) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.t0 < PROGRESS_AFTER_S or now - self.last < (0.25 if self.tty else 2.0):
            return
        self.last = now
        line = f"[swarm {now - self.t0:6.1f}s] {text}"
        if self.tty:
            self.stream.write("\r\x1b[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.shown = True

    def done(self) -> None:
        if self.enabled and self.shown and self.tty:
            self.stream.write("\n")
            self.stream.flush()


# ---------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------


@dataclass
class _WorkerHandle:
    index: int
    proc: Any  # multiprocessing.process.BaseProcess
    conn: Connection
    progress: dict[str, Any] = field(default_factory=dict)
    progress_ns: int = 0


def _plans(config: SwarmConfig, host: str, port: int, tag: str, connect_batch: int | None = None) -> list[WorkerPlan]:
    n, s, k = config.clients, config.sender_count, config.stalled_clients
    specs: list[ClientSpec] = []
    for cid in range(n):
        slot = cid if (not config.dedicated_senders and cid < s) else None
        specs.append(ClientSpec(cid, f"{NAME_PREFIX}{tag}-{cid}", receives=True, slot=slot))
    if config.dedicated_senders:
        for i in range(s):
            cid = n + i
            specs.append(ClientSpec(cid, f"{NAME_PREFIX}{tag}-{cid}", receives=False, slot=i))
    first_stalled = len(specs)
    stalled = [ClientSpec(first_stalled + i, f"{NAME_PREFIX}{tag}-st{i}", receives=False) for i in range(k)]
    sender_names = {c.cid: c.name for c in specs if c.slot is not None}
    p = config.worker_count
    batch = config.connect_batch or connect_batch
    inflight = {"max_inflight": max(1, batch // p)} if batch else {}
    return [
        WorkerPlan(
            index=w,
            host=host,
            port=port,
            clients=tuple(specs[w::p]),
            stalled=tuple(stalled[w::p]),
            sender_names=sender_names,
            payload_bytes=config.payload_bytes,
            ramp_per_s=config.ramp_per_s / p if config.ramp_per_s > 0 else 0.0,
            connect_timeout_s=config.connect_timeout_s,
            stalled_rcvbuf=config.stalled_rcvbuf,
            spin_us=config.spin_us,
            protocol=config.protocol_name,
            quickack=config.quickack,
            rx_clock=config.rx_clock,
            **inflight,
        )
        for w in range(p)
    ]


class _Run:
    def __init__(self, config: SwarmConfig) -> None:
        self.config = config
        self.progress = _Progress(config.progress)
        self.workers: list[_WorkerHandle] = []
        self.target: Target | None = None
        self.sampler = ResourceSampler(config.sample_interval_s)
        self.timing: dict[str, float] = {}
        self.notes: list[str] = []

    # -- talking to workers --------------------------------------------------

    def _receive(self, handle: _WorkerHandle) -> tuple[Any, ...]:
        try:
            msg: tuple[Any, ...] = handle.conn.recv()
        except (EOFError, OSError) as exc:
            raise SwarmError(f"worker {handle.index} died (exit code {handle.proc.exitcode})") from exc
        if msg[0] == "error":
            raise SwarmError(f"worker {msg[1]} failed:\n{msg[2]}")
        if msg[0] == "progress":
            handle.progress = msg[1]
            handle.progress_ns = time.monotonic_ns()
        return msg

    def _poll(self, timeout: float) -> list[tuple[_WorkerHandle, tuple[Any, ...]]]:
        """Messages that arrive within ``timeout`` (progress is absorbed)."""
        by_conn = {h.conn: h for h in self.workers}
        out = []
        ready = wait(list(by_conn), timeout)
        for c in ready:
            handle = by_conn[c]  # type: ignore[index]
            while handle.conn.poll():
                msg = self._receive(handle)
                if msg[0] != "progress":
                    out.append((handle, msg))
        return out

    def _gather(self, kind: str, timeout: float, status: str) -> dict[int, tuple[Any, ...]]:
        """Wait for one ``kind`` message from every worker."""
        got: dict[int, tuple[Any, ...]] = {}
        deadline = time.monotonic() + timeout
        while len(got) < len(self.workers):
            left = deadline - time.monotonic()
            if left <= 0:
                missing = sorted(set(range(len(self.workers))) - set(got))
                raise SwarmError(f"timed out after {timeout:.0f}s waiting for workers {missing} ({kind})")
            for handle, msg in self._poll(min(left, 0.25)):
                if msg[0] == kind:
                    got[handle.index] = msg
            for h in self.workers:
                if not h.proc.is_alive() and h.index not in got and not h.conn.poll():
                    raise SwarmError(f"worker {h.index} exited (code {h.proc.exitcode}) during {kind}")
            self.progress.update(status)
        return got

    def _broadcast(self, *msg: Any) -> None:
        for h in self.workers:
            h.conn.send(msg)

    # -- phases -------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        config = self.config
        started_at = dt.datetime.now(dt.UTC)
        t_start = time.monotonic()
        raise_nofile_limit()
        self.target = make_target(config.target, config.all_server_args, config.server_pid, config.protocol)
        limit = self.target.max_connections
        wanted = config.clients + (config.sender_count if config.dedicated_senders else 0) + config.stalled_clients
        if limit is not None and wanted > limit:
            raise SwarmError(
                f"{config.target} cannot hold {wanted} connections (its limit is about {limit}); "
                "use fewer clients for this target"
            )
        try:
            host, port = self.target.start()
            self.timing["server_start_s"] = round(time.monotonic() - t_start, 3)
            if self.target.pid is not None and not self.sampler.watch("server", self.target.pid, "server"):
                self.notes.append(f"server pid {self.target.pid} cannot be sampled")
            doc = self._run_with_target(host, port)
        finally:
            self.progress.done()
            self.sampler.stop()
            if self.target is not None:
                self.target.stop()  # before the workers close: leaves are then silent
            self._shutdown_workers()
        doc["target"] = self.target.describe()
        doc["started_at"] = started_at.isoformat(timespec="seconds")
        doc["timing"]["total_s"] = round(time.monotonic() - t_start, 3)
        return doc

    def _spawn(self, plans: list[WorkerPlan]) -> None:
        ctx = mp.get_context("spawn")
        for plan in plans:
            parent_end, child_end = ctx.Pipe(duplex=True)
            proc = ctx.Process(target=worker_main, args=(plan, child_end), name=f"swarm-worker-{plan.index}")
            proc.daemon = True
            proc.start()
            child_end.close()
            self.workers.append(_WorkerHandle(plan.index, proc, parent_end))

    def _shutdown_workers(self) -> None:
        for h in self.workers:
            try:
                h.conn.send(("exit",))
            except OSError:
                pass
        deadline = time.monotonic() + 10
        for h in self.workers:
            h.proc.join(max(0.1, deadline - time.monotonic()))
            if h.proc.is_alive():
                h.proc.terminate()
                h.proc.join(5)
            h.conn.close()

    def _run_with_target(self, host: str, port: int) -> dict[str, Any]:
        config = self.config
        tag = secrets.token_hex(2)
        assert self.target is not None
        plans = _plans(config, host, port, tag, self.target.connect_batch)
        t = time.monotonic()
        self._spawn(plans)
        for h in self.workers:
            self.sampler.watch(f"worker-{h.index}", h.proc.pid, "worker")
        self.sampler.start()

        # 1. connect and register
        total_conns = sum(len(p.clients) for p in plans)
        ramp_time = total_conns / config.ramp_per_s if config.ramp_per_s > 0 else 0.0
        ready = self._gather("ready", config.connect_timeout_s + ramp_time + 30, f"connecting {total_conns} clients")
        registered: set[int] = set()
        failures: Counter[str] = Counter()
        for msg in ready.values():
            registered.update(msg[1])
            failures.update(msg[2])
        self.timing["connect_s"] = round(time.monotonic() - t, 3)
        specs = {c.cid: c for p in plans for c in p.clients}
        receivers = sorted(cid for cid in registered if specs[cid].receives)
        senders = sorted(cid for cid in registered if specs[cid].slot is not None)
        if not senders:
            raise SwarmError(f"no sender could register ({dict(failures) or 'no failures recorded'})")
        if not receivers or (len(receivers) == 1 and not config.dedicated_senders and receivers == senders):
            raise SwarmError(f"no receiver could register ({dict(failures)})")

        # 2. stalled clients, after everyone else so no join notice can stall a registration
        stalled_ok = 0
        if config.stalled_clients:
            self._broadcast("stall")
            got = self._gather("stalled", config.connect_timeout_s + 30, "connecting stalled clients")
            stalled_ok = sum(int(m[1]) for m in got.values())
            failures = Counter()
            for m in got.values():
                failures.update(m[2])  # a worker's failure counts are cumulative

        # 3. traffic
        schedule = Schedule(
            t0_ns=time.monotonic_ns() + int(START_LEAD_S * 1e9),
            rate=config.rate,
            total=config.warmup_messages + config.measured_messages,
            senders=config.sender_count,
            warmup=config.warmup_messages,
            receivers_present=len(receivers),
        )
        self._broadcast("start", schedule)
        completed = self._drive(schedule, stalled=config.stalled_clients > 0)

        # 4. collect
        self._broadcast("stop_sending")
        sent_msgs = self._gather("sent", 30, "collecting")
        sent: dict[int, int] = {}
        measured: dict[int, int] = {}
        unsent_bytes = 0
        for msg in sent_msgs.values():
            sent.update(msg[1])
            measured.update(msg[2])
            unsent_bytes += msg[3]
        self._broadcast("finish", sent)
        worker_results = [m[1] for m in self._gather("result", 60, "collecting").values()]
        self.sampler.stop()
        return self._document(
            schedule=schedule,
            specs=specs,
            total_conns=total_conns,
            registered=registered,
            receivers=receivers,
            senders=senders,
            failures=failures,
            stalled_ok=stalled_ok,
            sent=sent,
            measured=measured,
            unsent_bytes=unsent_bytes,
            worker_results=worker_results,
            completed=completed,
            tag=tag,
        )

    def _drive(self, schedule: Schedule, *, stalled: bool) -> bool:
        """Run the schedule and the drain; True when every expected delivery arrived."""
        config = self.config
        end_ns = schedule.end_ns
        deadline_ns = end_ns + int(config.drain_timeout_s * 1e9)
        window_started = released = False
        t_end_send = None
        while True:
            self._poll(0.05)
            now = time.monotonic_ns()
            if not window_started and now >= schedule.t0_ns:
                self.sampler.window_start()
                window_started = True
            if stalled and not released and now >= end_ns:
                self._broadcast("release")
                released = True
            states = [h.progress for h in self.workers]
            delivered = sum(p.get("delivered", 0) for p in states)
            expected = sum(p.get("expected", 0) for p in states)
            pending = sum(p.get("pending", 0) for p in states)
            sent = sum(p.get("sent", 0) for p in states)
            if now >= end_ns:
                if t_end_send is None:
                    t_end_send = now
                fresh = all(p.get("t_ns", 0) > end_ns for p in states)
                if fresh and pending == 0 and delivered >= expected:
                    break
                if now >= deadline_ns:
                    self.notes.append(
                        f"drain timeout ({config.drain_timeout_s:g}s): {pending} messages unsent, "
                        f"{expected - delivered} deliveries outstanding"
                    )
                    break
                phase = "draining"
            else:
                phase = "sending"
            elapsed = max(0.0, (now - schedule.t0_ns) / 1e9)
            planned = max(0.0, (end_ns - schedule.t0_ns) / 1e9)
            self.progress.update(
                f"{phase} {min(elapsed, planned):.1f}/{planned:.1f}s  sent {sent}/{schedule.total}  "
                f"delivered {delivered}/{expected}"
            )
        if not window_started:
            self.sampler.window_start()
        self.sampler.window_end()
        done = time.monotonic_ns()
        self.timing["traffic_s"] = round((done - schedule.t0_ns) / 1e9, 3)
        self.timing["drain_s"] = round((done - (t_end_send or done)) / 1e9, 3)
        return bool(pending == 0 and delivered >= expected)

    # -- the document ---------------------------------------------------------------

    def _document(
        self,
        *,
        schedule: Schedule,
        specs: dict[int, ClientSpec],
        total_conns: int,
        registered: set[int],
        receivers: list[int],
        senders: list[int],
        failures: Counter[str],
        stalled_ok: int,
        sent: dict[int, int],
        measured: dict[int, int],
        unsent_bytes: int,
        worker_results: list[dict[str, Any]],
        completed: bool,
        tag: str,
    ) -> dict[str, Any]:
        config = self.config
        n_recv = len(receivers)

        def audience(cid: int) -> int:  # receivers of one message from sender cid
            return n_recv - (1 if specs[cid].receives else 0)

        hist = LatencyHistogram()
        lag = LatencyHistogram()
        rx_lag = LatencyHistogram()
        rx_clocks: set[str] = set()
        unstamped = 0
        integrity = IntegrityCounts()
        disconnects: Counter[str] = Counter()
        delivered = delivered_all = echoes = lines = bytes_in = 0
        last_recv = 0
        for r in worker_results:
            hist.merge(LatencyHistogram.decode(r["histogram"], r["clamped"]))
            lag.merge(LatencyHistogram.decode(r["send_lag_histogram"], r["send_lag_clamped"]))
            rx_lag.merge(LatencyHistogram.decode(r["receive_lag_histogram"], r["receive_lag_clamped"]))
            rx_clocks.add(r["rx_clock"])
            unstamped += r["unstamped_reads"]
            integrity.add(IntegrityCounts.from_dict(r["integrity"]))
            disconnects.update(r["disconnects"])
            delivered += r["delivered_measured"]
            delivered_all += r["delivered_all"]
            echoes += r["echoes"]
            lines += r["lines"]
            bytes_in += r["bytes_in"]
            last_recv = max(last_recv, r["last_measured_recv_ns"])
        expected = sum(count * audience(cid) for cid, count in measured.items())
        expected_all = sum(count * audience(cid) for cid, count in sent.items())
        send_span = config.measured_messages / config.rate if config.rate > 0 else 0.0
        recv_span = max(0.0, (last_recv - schedule.measure_start_ns) / 1e9) if last_recv else 0.0
        span = max(send_span, recv_span)
        resources = self.sampler.result()
        saturated = bool(resources["saturated_workers"])
        if saturated:
            self.notes.append(
                "load generator saturated: worker(s) "
                + ", ".join(resources["saturated_workers"])
                + " were running or waiting for a CPU >= 90% of the traffic window; latency and throughput "
                "may be the harness's limits"
            )
        if unstamped:
            self.notes.append(
                f"{unstamped} reads came without a kernel receive stamp; they were timed when read (--rx-clock read)"
            )
        if integrity.lost and disconnects:
            self.notes.append(f"receivers disconnected during the run: {dict(disconnects)}")
        total_sent = sum(sent.values())
        return {
            "schema_version": results.SCHEMA_VERSION,
            "kind": results.RUN_KIND,
            "run_id": f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{tag}",
            "label": config.label,
            "parameters": config.parameters(),
            "environment": environment(),
            "connections": {
                "requested": total_conns + config.stalled_clients,
                "registered": len(registered),
                "receivers": n_recv,
                "senders": len(senders),
                "stalled": stalled_ok,
                "failed": sum(failures.values()),
                "failures": dict(failures),
                "disconnected_during_run": sum(disconnects.values()),
                "disconnect_reasons": dict(disconnects),
            },
            "messages": {
                "scheduled": schedule.total,
                "warmup": schedule.warmup,
                "sent": total_sent,
                "measured_sent": sum(measured.values()),
                "unsent": schedule.total - total_sent,
                "unsent_bytes": unsent_bytes,
            },
            "deliveries": {
                "expected": expected,
                "delivered": delivered,
                "delivered_ratio": round(delivered / expected, 6) if expected else None,
                "per_s": round(delivered / span, 1) if span > 0 else None,
                "offered_per_s": round(expected / send_span, 1) if send_span > 0 else None,
                "span_s": round(span, 4),
                "expected_all": expected_all,
                "delivered_all": delivered_all,
                "echoes": echoes,
                "lines_received": lines,
                "bytes_received": bytes_in,
            },
            "completed": completed,
            "latency_us": hist.summary(),
            "send_lag_us": lag.summary(),
            "rx_clock": rx_clocks.pop() if len(rx_clocks) == 1 else ("mixed" if rx_clocks else config.rx_clock),
            "receive_lag_us": rx_lag.summary() if rx_lag.count else None,
            "integrity": {**integrity.as_dict(), "faults": integrity.faults},
            "resources": resources,
            "load_generator_saturated": saturated,
            "histogram": {
                "format": "hdrhistogram-v2-base64",
                "unit": "us",
                "data": hist.encode(),
                "clamped": hist.clamped,
            },
            "timing": dict(self.timing),
            "notes": self.notes,
        }


def run_swarm(config: SwarmConfig) -> dict[str, Any]:
    """Carry out one run and return its result document (not written anywhere)."""
    try:
        return _Run(config).run()
    except TargetError as exc:
        raise SwarmError(str(exc)) from exc
