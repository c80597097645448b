"""What one swarm run is asked to do: :class:`SwarmConfig`, checked on creation."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from functools import cached_property

from bench import wire
from bench.measure import intervals, probe
from bench.measure.sampler import DEFAULT_INTERVAL_S
from bench.net.tls import TlsOptions
from bench.results.schema import RunParameters, SeriesParameters, WorkloadParameters
from bench.swarm import pinning
from bench.targets import TargetError, target_protocol
from bench.targets.base import Security
from bench.wire.credentials import CredentialsError, Logins
from bench.workload import Workload, WorkloadError, build

#: Default senders when ``--senders`` is not given (capped at the client count).
DEFAULT_SENDERS = 10


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
    server_cpus: tuple[int, ...] | None = None  #: pin the server to these CPUs (bench.swarm.pinning)
    harness_cpus: tuple[int, ...] | None = None  #: pin the workers and this process to these CPUs
    interval_s: float = (
        intervals.DEFAULT_INTERVAL_S
    )  #: the time axis: one histogram per interval (bench.measure.intervals)
    progress: bool = True  #: progress line on stderr for long runs
    label: str | None = None
    #: rooms, senders and messages (bench.workload); the default is the one room
    workload: Workload = field(default_factory=Workload)
    #: every connection over TLS (``--tls``, ``--ca``, ``--insecure``, ...); None: plaintext
    tls: TlsOptions | None = None
    #: who the clients log in as (``--user``/``--password``, ``--credentials``); None: no login
    logins: Logins | None = None

    def __post_init__(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ValueError(msg)

        need(self.clients >= 1, "--clients must be at least 1")
        need(self.senders is None or self.senders >= 1, "--senders must be at least 1")
        one_room = self.workload.one_room
        try:
            if not self.dedicated_senders and not wire.get(self.protocol_name).senders_receive:
                object.__setattr__(self, "dedicated_senders", True)  # e.g. Redis: subscribers cannot publish
        except (TargetError, ValueError):
            pass  # reported below
        if not self.dedicated_senders:
            need(
                one_room or self.senders is None,
                "--senders counts the senders of one room (or the --dedicated-senders); a workload of rooms has "
                "--senders-per-room of its members sending in each",
            )
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
        self._check_workload(proto)
        need(self.connect_batch is None or self.connect_batch >= 1, "--connect-batch must be at least 1")
        need(self.workers is None or self.workers >= 1, "--workers must be at least 1")
        need(self.ramp_per_s >= 0, "--ramp must be >= 0")
        need(self.connect_timeout_s > 0, "--connect-timeout must be positive")
        need(self.drain_timeout_s >= 0, "--drain-timeout must be >= 0")
        need(self.sample_interval_s > 0, "--sample-interval must be positive")
        need(self.interval_s >= intervals.MIN_INTERVAL_S, f"--interval must be at least {intervals.MIN_INTERVAL_S:g} s")
        why_not = pinning.check_cpus(self.server_cpus or (), self.harness_cpus or ())
        need(why_not is None, str(why_not))
        if self.logins is not None:
            try:
                self.logins.check(proto, wire.get(proto).login, self.connections)
            except CredentialsError as exc:
                raise ValueError(str(exc)) from None

    def _check_workload(self, proto: str) -> None:
        """The workload fits the protocol: rooms where it has them, the
        largest payload within its limits (sent to the longest room name)."""
        adapter = wire.get(proto)
        if not self.workload.one_room:
            if adapter.no_rooms is not None:
                raise ValueError(f"{self.workload.name or 'this workload'} needs rooms, but {adapter.no_rooms}")
            try:
                self.layout  # noqa: B018 - built now, for its errors
            except WorkloadError as exc:
                raise ValueError(str(exc)) from None
        largest = self.workload.payload.largest if self.workload.payload is not None else self.payload_bytes
        room = "" if self.workload.one_room else "r" + "9" * len(str(self.clients + self.sender_count))
        sample = probe.encode_probe(10**6, 10**9, time.monotonic_ns(), "x" * largest)
        why = adapter.check_text(sample, room)
        if why is not None:
            raise ValueError(f"--payload {largest} is too big for the {proto} protocol: {why}")

    @cached_property
    def layout(self) -> build.Layout:
        """Who is in which room and sends where (by client index: the
        receivers, then the dedicated senders)."""
        dedicated = self.declared_senders if self.dedicated_senders else 0
        return build.layout(self.workload, self.clients, dedicated, self.declared_senders)

    @property
    def declared_senders(self) -> int:
        """``--senders`` (one room's senders, or the dedicated senders); default min(clients, 10)."""
        if self.senders is not None:
            return self.senders
        if self.workload.one_room and self.workload.senders_per_room is not None and not self.dedicated_senders:
            return self.workload.senders_per_room
        return min(self.clients, DEFAULT_SENDERS)

    @property
    def total_rate(self) -> float:
        """Messages/s over all streams: ``rate``, or with the rate per room
        ``rate`` times the rooms that have a sender."""
        if self.workload.rate_mode == "per-room":
            return self.rate * self.layout.rooms_with_streams
        return self.rate

    @property
    def protocol_name(self) -> str:
        """The protocol the target speaks (``chat`` or ``irc``)."""
        return target_protocol(self.target, self.protocol)

    @property
    def transport(self) -> str:
        """``tls`` or ``plain``: how every client reaches the target."""
        return "tls" if self.tls is not None else "plain"

    @property
    def security(self) -> Security:
        """What a target the harness starts is secured with."""
        return Security(tls=self.tls is not None, logins=self.logins)

    @property
    def connections(self) -> int:
        """Every connection the run opens: clients, dedicated senders, stalled clients."""
        return self.clients + (self.sender_count if self.dedicated_senders else 0) + self.stalled_clients

    @property
    def sender_count(self) -> int:
        """Sending connections: one room's senders or the dedicated ones;
        in a workload of rooms, the members its layout has sending."""
        if self.workload.one_room or self.dedicated_senders:
            return self.declared_senders
        return len(self.layout.senders)

    @property
    def worker_count(self) -> int:
        total = self.clients + (self.sender_count if self.dedicated_senders else 0)
        # The server always runs on this machine too (loopback only): leave it a CPU,
        # or, pinned apart, one worker per harness CPU (or per CPU the server does not have).
        default = max(1, (os.cpu_count() or 2) - 1)
        if self.harness_cpus:
            default = len(self.harness_cpus)
        elif self.server_cpus:
            default = max(1, len(set(pinning.available_cpus()) - set(self.server_cpus)))
        return max(1, min(self.workers or default, total))

    @property
    def warmup_messages(self) -> int:
        return round(self.warmup_s * self.total_rate) if self.rate > 0 else 0

    @property
    def measured_messages(self) -> int:
        if self.messages is not None:
            return self.messages
        return max(1, round(self.duration_s * self.total_rate))

    @property
    def all_server_args(self) -> tuple[str, ...]:
        args: list[str] = []
        if self.fanout is not None:
            args += ["--fanout", self.fanout]
        if self.send_queue_bytes is not None:
            args += ["--send-queue-bytes", str(self.send_queue_bytes)]
        return (*args, *self.server_args)

    def parameters(self) -> RunParameters:
        """Every field but ``progress`` (how a run is shown, not what it
        measures), with the effective ``senders``, ``workers``, ``protocol``
        and ``server_args``, plus the derived counts."""
        return {"clients": self.clients, **self.series_parameters()}

    def series_parameters(self) -> SeriesParameters:
        """:meth:`parameters` without ``clients`` (a series' index)."""
        out: SeriesParameters = {
            "senders": self.sender_count,
            "dedicated_senders": self.dedicated_senders,
            "stalled_clients": self.stalled_clients,
            "stalled_rcvbuf": self.stalled_rcvbuf,
            "rate": self.rate,
            "messages": self.messages,
            "duration_s": self.duration_s,
            "warmup_s": self.warmup_s,
            "payload_bytes": self.payload_bytes,
            "workers": self.worker_count,
            "ramp_per_s": self.ramp_per_s,
            "connect_timeout_s": self.connect_timeout_s,
            "drain_timeout_s": self.drain_timeout_s,
            "sample_interval_s": self.sample_interval_s,
            "interval_s": self.interval_s,
            "spin_us": self.spin_us,
            "target": self.target,
            "protocol": self.protocol_name,
            "connect_batch": self.connect_batch,
            "quickack": self.quickack,
            "rx_clock": self.rx_clock,
            "fanout": self.fanout,
            "send_queue_bytes": self.send_queue_bytes,
            "server_args": list(self.all_server_args),
            "server_pid": self.server_pid,
            "label": self.label,
            "warmup_messages": self.warmup_messages,
            "measured_messages": self.measured_messages,
            "senders_receive": not self.dedicated_senders,
            "server_cpus": list(self.server_cpus) if self.server_cpus is not None else None,
            "harness_cpus": list(self.harness_cpus) if self.harness_cpus is not None else None,
            "transport": self.transport,
            "tls": self.tls.describe() if self.tls is not None else None,
            "logins": self.logins.describe() if self.logins is not None else None,
        }
        workload = self._workload_parameters()
        if workload is not None:
            out["workload"] = workload
        return out

    def _workload_parameters(self) -> WorkloadParameters | None:
        """``parameters.workload`` of a run with rooms or drawn traffic; None for the plain one room."""
        w = self.workload
        if w.plain:
            return None
        return {
            "scenario": w.name,
            "description": w.description,
            "summary": w.describe(),
            "seed": w.seed,
            "rooms": w.rooms,
            "room_sizes": str(w.sizes),
            "rooms_per_client": w.per_client,
            "personal_rooms": w.personal,
            "senders_per_room": w.senders_per_room,
            "publisher_skew": w.publisher_skew,
            "payload_sizes": str(w.payload) if w.payload is not None else None,
            "arrivals": w.arrivals,
            "rate_mode": w.rate_mode,
            "total_rate": self.total_rate,
        }
