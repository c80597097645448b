"""One swarm run, phase by phase: start the target, spawn the workers,
register, (stall), traffic and drain, collect; then the result document
(:mod:`bench.swarm.document`).
"""

from __future__ import annotations

import datetime as dt
import secrets
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import TextIO

from bench.measure.sampler import ResourceSampler
from bench.net.tls import TlsOptions
from bench.results.schema import Resources, RunDocument
from bench.results.verdicts import check_run
from bench.swarm import pinning
from bench.swarm.config import SwarmConfig, SwarmError
from bench.swarm.document import Collected, build_document
from bench.swarm.messages import (
    Finish,
    Progress,
    Quiet,
    Ready,
    Release,
    Result,
    Sent,
    Settle,
    Stall,
    Stalled,
    Start,
    StopSending,
)
from bench.swarm.plan import Schedule, make_plans
from bench.swarm.pool import WorkerPool
from bench.swarm.series import Outputs, RunInfo, SeriesMerger
from bench.swarm.thresholdwatch import ThresholdWatch
from bench.targets import Target, make_target, registry
from bench.workload.traffic import traffic
from server.limits import raise_open_file_limit

#: Seconds between the ``start`` command and the first intended send, so
#: every worker has the schedule before it begins.
START_LEAD_S = 0.2
#: Runs longer than this (seconds) show a progress line on stderr.
PROGRESS_AFTER_S = 2.0
#: Seconds between progress lines: on a terminal (one line redrawn), and in a log.
PROGRESS_EVERY_TTY_S = 0.25
PROGRESS_EVERY_LOG_S = 2.0
#: Seconds one polling round of the traffic phase waits for reports.
DRIVE_POLL_S = 0.05
#: Slack (seconds) on top of the configured timeouts for the workers' answers.
REGISTER_SLACK_S = 30.0
COLLECT_SENT_S = 30.0
COLLECT_RESULT_S = 60.0
#: The room is quiet once no client received a byte for this long: the
#: registrations' join notices (N arrivals = N*(N-1)/2 lines, about 500,000 at
#: 1,000 clients) have been delivered, and traffic can start in a quiet room.
QUIET_S = 0.3
#: Longest wait for a quiet room; a server that never stops talking (or keeps
#: up periodic traffic) is measured anyway, with a note.
SETTLE_TIMEOUT_S = 60.0
#: How often the workers are asked while the room settles.
SETTLE_POLL_S = 0.1


def rooms_refusal(config: SwarmConfig, target: Target) -> str | None:
    """Why ``target`` cannot hold the rooms of ``config``'s workload (a limit
    of its own, checked before anything starts), or None."""
    if config.workload.one_room:
        return None
    layout = config.layout
    per_client = max((len(rooms) for rooms in layout.rooms_of.values()), default=0)
    why = target.refuses_rooms(len(layout.rooms), per_client)
    return f"{config.target} cannot run this workload: {why}" if why is not None else None


class ProgressLine:
    """One status line on stderr, shown once a run is past a few seconds
    (``sink``: handed to it instead, e.g. a live view that draws it)."""

    def __init__(self, enabled: bool, stream: TextIO = sys.stderr, sink: Callable[[str], None] | None = None) -> None:
        self.enabled = enabled
        self.stream = stream
        self.sink = sink
        self.t0 = time.monotonic()
        self.tty = stream.isatty()
        self.last = 0.0
        self.shown = False

    def update(self, text: str) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        every = PROGRESS_EVERY_TTY_S if self.tty else PROGRESS_EVERY_LOG_S
        if now - self.t0 < PROGRESS_AFTER_S or now - self.last < every:
            return
        self.last = now
        line = f"[swarm {now - self.t0:6.1f}s] {text}"
        if self.sink is not None:
            self.sink(line)
            return
        if self.tty:
            self.stream.write("\r\x1b[K" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.shown = True

    def done(self) -> None:
        if self.enabled and self.shown and self.tty and self.sink is None:
            self.stream.write("\n")
            self.stream.flush()


def client_tls(config: SwarmConfig) -> TlsOptions | None:
    """The clients' TLS settings (:func:`bench.targets.registry.client_tls`)."""
    return registry.client_tls(config.tls, config.target)


def pin(pid: int, cpus: tuple[int, ...]) -> None:
    """Every thread of ``pid`` on ``cpus``; a SwarmError if it cannot be."""
    try:
        pinning.pin_process(pid, cpus)
    except pinning.PinningError as exc:
        raise SwarmError(str(exc)) from None


class SwarmRun:
    """One run of a :class:`SwarmConfig`; :meth:`run` returns its document.
    ``outputs``: observers see every interval as it completes
    (:mod:`bench.live`), thresholds are checked at the end and stop the run
    when one marked abort-on-fail is crossed."""

    def __init__(self, config: SwarmConfig, outputs: Outputs | None = None) -> None:
        self.config = config
        outputs = outputs or Outputs()
        self.progress = ProgressLine(config.progress, sink=outputs.status)
        self.sampler = ResourceSampler(config.sample_interval_s)
        self.thresholds = list(outputs.thresholds)
        watch = [ThresholdWatch(self.thresholds)] if any(t.abort_on_fail for t in self.thresholds) else []
        self.series = SeriesMerger(config.worker_count, [*outputs.observers, *watch], self.sampler)
        self.pool = WorkerPool(self.progress.update, self.series.add)
        self.timing: dict[str, float] = {}
        self.notes: list[str] = []

    def run(self) -> RunDocument:
        """Start the target, run with it, stop everything (whatever happened),
        then the document."""
        # a started target's CA trusted (it generates its certificate)
        config = self.config = replace(self.config, tls=client_tls(self.config))
        started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        t_start = time.monotonic()
        raise_open_file_limit()
        target = make_target(config.target, config.all_server_args, config.server_pid, config.protocol, config.security)
        if config.tls is not None and config.tls.insecure:
            self.notes.append("--insecure: the target's TLS certificate was not checked")
        limit = target.max_connections
        wanted = config.connections
        if limit is not None and wanted > limit:
            raise SwarmError(
                f"{config.target} cannot hold {wanted} connections (its limit is about {limit}); "
                "use fewer clients for this target"
            )
        why = rooms_refusal(config, target)
        if why is not None:
            raise SwarmError(why)
        try:
            with pinning.pinned_self(config.harness_cpus):
                host, port = target.start()
                self.timing["server_start_s"] = round(time.monotonic() - t_start, 3)
                self._pin_server(target.pid)
                if target.pid is not None and not self.sampler.watch("server", target.pid, "server"):
                    self.notes.append(f"server pid {target.pid} cannot be sampled")
                got, resources = self._run_with_target(target, host, port, started_at, t_start)
        finally:
            self.progress.done()
            self.sampler.stop()
            target.stop()  # before the workers close: leaves are then silent
            self.pool.shutdown()
        doc = build_document(config, got, resources, target.describe())
        if self.thresholds:
            doc["thresholds"] = check_run(doc, self.thresholds, aborted=self.series.abort)
        self.series.run_finished(doc)
        return doc

    def _run_with_target(
        self, target: Target, host: str, port: int, started_at: str, t_start: float
    ) -> tuple[Collected, Resources]:
        """Every phase with the target up: what they collected, and the sampler's resources."""
        config = self.config
        tag = secrets.token_hex(2)
        plans = make_plans(config, host, port, tag, target.connect_batch, target.node_addresses())
        if config.logins is not None:  # ours: the clients' names and passwords, in its accounts file
            target.enroll(
                [(c.name, config.logins.for_client(c.cid).password) for p in plans for c in (*p.clients, *p.stalled)]
            )
        got = Collected(
            tag=tag,
            started_at=started_at,
            t_start=t_start,
            specs={c.cid: c for p in plans for c in p.clients},
            workload=plans[0].workload,
            total_conns=sum(len(p.clients) for p in plans),
            timing=self.timing,
            notes=self.notes,
        )
        t = time.monotonic()
        self.pool.spawn(plans)
        for h in self.pool.workers:
            assert h.proc.pid is not None
            if config.harness_cpus is not None:
                pin(h.proc.pid, config.harness_cpus)
            self.sampler.watch(f"worker-{h.index}", h.proc.pid, "worker")
        self.sampler.start()
        self._register(got)
        self.timing["connect_s"] = round(time.monotonic() - t, 3)
        if config.stalled_clients:
            self._stall(got)
        self._settle()
        self._traffic(got)
        self._collect(got)
        self.sampler.stop()
        return got, self.sampler.result()

    def _pin_server(self, pid: int | None) -> None:
        """--server-cpus: every thread of the server on those CPUs (a SwarmError if it cannot be)."""
        cpus = self.config.server_cpus
        if cpus is None:
            return
        if pid is None:
            raise SwarmError("--server-cpus needs the server's pid: give --server-pid with a HOST:PORT target")
        pin(pid, cpus)

    # -- phases ---------------------------------------------------------------------

    def _register(self, got: Collected) -> None:
        """Every worker connects and registers its share."""
        config = self.config
        ramp_time = got.total_conns / config.ramp_per_s if config.ramp_per_s > 0 else 0.0
        ready = self.pool.gather(
            Ready, config.connect_timeout_s + ramp_time + REGISTER_SLACK_S, f"connecting {got.total_conns} clients"
        )
        for msg in ready.values():
            got.registered.update(msg.registered)
            got.failures.update(msg.failures)
            if msg.setup is not None:
                got.setup.add(msg.setup)
        got.receivers = sorted(cid for cid in got.registered if got.specs[cid].receives)
        got.senders = sorted(cid for cid in got.registered if got.specs[cid].slot is not None)
        if not got.senders:
            raise SwarmError(f"no sender could register ({dict(got.failures) or 'no failures recorded'})")
        lone = len(got.receivers) == 1 and not config.dedicated_senders and got.receivers == got.senders
        if not got.receivers or lone:
            raise SwarmError(f"no receiver could register ({dict(got.failures)})")

    def _stall(self, got: Collected) -> None:
        """Stalled clients, after everyone else so no join notice can stall a registration."""
        self.pool.broadcast(Stall())
        stalled = self.pool.gather(
            Stalled, self.config.connect_timeout_s + REGISTER_SLACK_S, "connecting stalled clients"
        )
        got.stalled_ok = sum(m.count for m in stalled.values())
        got.failures = Counter()
        for m in stalled.values():
            got.failures.update(m.failures)  # a worker's failure counts are cumulative

    def _settle(self) -> None:
        """Wait until no client has received anything for :data:`QUIET_S`:
        the fan-out is then measured in a quiet room, not behind the
        registrations' join notices.  ``timing.settle_s`` says how long it took."""
        t0 = time.monotonic_ns()
        deadline = t0 + int(SETTLE_TIMEOUT_S * 1e9)
        quiet_ns = int(QUIET_S * 1e9)
        while True:
            self.pool.broadcast(Settle())
            answers = self.pool.gather(Quiet, COLLECT_SENT_S, "waiting for a quiet room")
            now = time.monotonic_ns()
            last = max((q.last_rx_ns for q in answers.values()), default=0)
            if now - last >= quiet_ns:
                break
            if now >= deadline:
                self.notes.append(
                    f"the room was not quiet after {SETTLE_TIMEOUT_S:g}s (clients still receiving registration "
                    "traffic): measured anyway"
                )
                break
            self.progress.update("waiting for registration traffic to stop")
            time.sleep(min(SETTLE_POLL_S, (quiet_ns - (now - last)) / 1e9))
        self.timing["settle_s"] = round((time.monotonic_ns() - t0) / 1e9, 3)

    def _traffic(self, got: Collected) -> None:
        """Send the schedule and wait for its deliveries."""
        config = self.config
        total = config.warmup_messages + config.measured_messages
        slots = len(config.layout.streams)
        rate = config.total_rate
        got.schedule = Schedule(
            t0_ns=time.monotonic_ns() + int(START_LEAD_S * 1e9),
            rate=rate,
            total=total,
            senders=slots,
            warmup=config.warmup_messages,
            audience=got.workload.audience_sizes(set(got.receivers)),
            traffic=traffic(config.workload, config.layout.weights, slots, total, rate),
        )
        title = f"{config.fanout or config.target}, {config.clients} clients"
        schedule = got.schedule
        info = RunInfo(
            title=title,
            clients=config.clients,
            interval_s=config.interval_s,
            warmup_s=(schedule.measure_start_ns - schedule.t0_ns) / 1e9,
            send_end_s=(schedule.end_ns - schedule.t0_ns) / 1e9,
        )
        self.series.start(schedule, config.interval_s, got.workload, schedule.audience, info)
        self.pool.broadcast(Start(got.schedule))
        got.completed = self._drive(got.schedule, stalled=config.stalled_clients > 0)

    def _collect(self, got: Collected) -> None:
        """Stop the senders, then gather every worker's counts and histograms."""
        self.pool.broadcast(StopSending())
        for msg in self.pool.gather(Sent, COLLECT_SENT_S, "collecting").values():
            got.sent.update(msg.sent)
            got.measured.update(msg.measured)
            got.unsent_bytes += msg.unsent_bytes
        self.pool.broadcast(Finish(got.sent))
        got.worker_results = list(self.pool.gather(Result, COLLECT_RESULT_S, "collecting").values())
        self.series.finish(time.monotonic_ns())
        lost: Counter[int] = Counter()
        for r in got.worker_results:
            lost.update(r.lost_by_interval)
        got.intervals = self.series.document(got.sent, lost)

    def _drive(self, schedule: Schedule, *, stalled: bool) -> bool:
        """Run the schedule and the drain; True when every expected delivery arrived."""
        config = self.config
        end_ns = schedule.end_ns
        deadline_ns = end_ns + int(config.drain_timeout_s * 1e9)
        window_started = released = False
        t_end_send = None
        while True:
            self.pool.poll(DRIVE_POLL_S)
            now = time.monotonic_ns()
            if not window_started and now >= schedule.t0_ns:
                self.sampler.window_start()
                window_started = True
            if stalled and not released and now >= end_ns:
                self.pool.broadcast(Release())
                released = True
            states = self.pool.progress()
            delivered = sum(p.delivered for p in states)
            expected = sum(p.expected for p in states)
            pending = sum(p.pending for p in states)
            if self.series.abort is not None:
                self.notes.append(f"stopped early: {self.series.abort}")
                break
            if now >= end_ns:
                if t_end_send is None:
                    t_end_send = now
                fresh = all(p.t_ns > end_ns for p in states)
                if fresh and pending == 0 and delivered >= expected:
                    break
                if now >= deadline_ns:
                    self.notes.append(
                        f"drain timeout ({config.drain_timeout_s:g}s): {pending} messages unsent, "
                        f"{expected - delivered} deliveries outstanding"
                    )
                    break
            self._show(schedule, now, states)
        if not window_started:
            self.sampler.window_start()
        self.sampler.window_end()
        done = time.monotonic_ns()
        self.timing["traffic_s"] = round((done - schedule.t0_ns) / 1e9, 3)
        self.timing["drain_s"] = round((done - (t_end_send or done)) / 1e9, 3)
        return bool(pending == 0 and delivered >= expected)

    def _show(self, schedule: Schedule, now: int, states: list[Progress]) -> None:
        """The progress line of the traffic phase."""
        end_ns = schedule.end_ns
        phase = "draining" if now >= end_ns else "sending"
        elapsed = max(0.0, (now - schedule.t0_ns) / 1e9)
        planned = max(0.0, (end_ns - schedule.t0_ns) / 1e9)
        self.progress.update(
            f"{phase} {min(elapsed, planned):.1f}/{planned:.1f}s  sent {sum(p.sent for p in states)}/{schedule.total}  "
            f"delivered {sum(p.delivered for p in states)}/{sum(p.expected for p in states)}"
        )
