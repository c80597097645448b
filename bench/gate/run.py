"""A gate run: both targets started, interleaved rounds, the summary.

:class:`GateRun` starts the server under test and the calibration relay
through :mod:`bench.targets` (one :class:`~bench.targets.CommandTarget`
each), connects a :class:`~bench.gate.burst.FanoutGroup` to each and runs
rounds alternately, relay then server, so both see the same machine moment
by moment.  :class:`Measurement` is the result: per-target summaries
(:class:`TargetSummary`, typical values = mean of the faster half of the
rounds) and the server / relay ratios the gate judges.
"""

from __future__ import annotations

import shlex
import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Literal, TypedDict

from bench.gate.burst import BurstResult, FanoutGroup, member_names
from bench.gate.scenario import GateError, Scenario
from bench.measure.stats import LatencyHistogram
from bench.net.tls import TlsInfo
from bench.results.schema import Latency
from bench.targets import CommandTarget, Target, TargetError, client_tls, make_target, target_protocol
from bench.targets.relay import relay_target
from bench.wire.client import ClientError


class TargetSummaryDoc(TypedDict):
    """:meth:`TargetSummary.to_json`: one target's rounds in ``bench gate --json``."""

    label: str
    typical_fanout_us: float
    typical_p50_us: float
    typical_p99_us: float
    median_fanout_us: float
    fanout_us: list[int]
    p50_us: list[int]
    p99_us: list[int]
    timed_out: int
    incomplete_receivers: int
    latency: Latency


class AccessDoc(TypedDict):
    """How the target's clients connect: TLS settings (None: plaintext), who logs in (never a password)."""

    tls: TlsInfo | None
    logins: str | None


class ScenarioDoc(TypedDict):
    """The :class:`~bench.gate.scenario.Scenario` of a measurement, its server command as one string."""

    clients: int
    lines: int
    payload: int
    rounds: int
    warmup: int
    burst_timeout: float
    fanout: Literal["queued", "direct"]
    stalled: int
    server_command: str
    target: str | None  #: another target measured instead of our server (None: ours)
    protocol: str | None  #: the protocol of a HOST:PORT or ws:// target
    access: AccessDoc  #: TLS and logins (``--tls``: the target only; the relay is plaintext)


class MeasurementDoc(TypedDict):
    """:meth:`Measurement.to_json`: one attempt in ``bench gate --json``."""

    scenario: ScenarioDoc
    ratios: dict[str, float]
    stalled: bool
    server: TargetSummaryDoc
    relay: TargetSummaryDoc
    seconds: float
    arrival_clock: str


@dataclass(frozen=True, slots=True)
class TargetSummary:
    """One target's rounds of a run."""

    label: str
    fanout_us: tuple[int, ...]
    p50_us: tuple[int, ...]
    p99_us: tuple[int, ...]
    #: Rounds that timed out (the target stalled); later rounds count as
    #: timed out too, without waiting, since a stalled target stays stalled.
    timed_out: int
    incomplete_receivers: int
    latency: Latency

    @property
    def median_fanout_us(self) -> float:
        return float(statistics.median(self.fanout_us))

    @property
    def typical_fanout_us(self) -> float:
        return fast_half_mean(self.fanout_us)

    @property
    def typical_p50_us(self) -> float:
        return fast_half_mean(self.p50_us)

    @property
    def typical_p99_us(self) -> float:
        return fast_half_mean(self.p99_us)

    def to_json(self) -> TargetSummaryDoc:
        return {
            "label": self.label,
            "typical_fanout_us": round(self.typical_fanout_us, 1),
            "typical_p50_us": round(self.typical_p50_us, 1),
            "typical_p99_us": round(self.typical_p99_us, 1),
            "median_fanout_us": self.median_fanout_us,
            "fanout_us": list(self.fanout_us),
            "p50_us": list(self.p50_us),
            "p99_us": list(self.p99_us),
            "timed_out": self.timed_out,
            "incomplete_receivers": self.incomplete_receivers,
            "latency": self.latency,
        }


@dataclass(frozen=True, slots=True)
class Measurement:
    """Both targets' summaries of one run, and their ratios."""

    scenario: Scenario
    server: TargetSummary
    relay: TargetSummary
    seconds: float
    #: Received chunks timed by the harness clock (no kernel stamp); 0 normally.
    unstamped_chunks: int = 0

    @property
    def stalled(self) -> bool:
        return self.server.timed_out > 0

    @property
    def ratios(self) -> dict[str, float]:
        return {
            "fanout_ratio": self.server.typical_fanout_us / max(1.0, self.relay.typical_fanout_us),
            "p50_ratio": self.server.typical_p50_us / max(1.0, self.relay.typical_p50_us),
        }

    def to_json(self) -> MeasurementDoc:
        s = self.scenario
        return {
            "scenario": {
                "clients": s.clients,
                "lines": s.lines,
                "payload": s.payload,
                "rounds": s.rounds,
                "warmup": s.warmup,
                "burst_timeout": s.burst_timeout,
                "fanout": s.fanout,
                "stalled": s.stalled,
                "server_command": shlex.join(s.server_argv()),
                "target": s.target,
                "protocol": s.protocol,
                "access": {
                    "tls": s.access.tls.describe() if s.access.tls is not None else None,
                    "logins": s.access.logins.describe() if s.access.logins is not None else None,
                },
            },
            "ratios": {k: round(v, 4) for k, v in self.ratios.items()},
            "stalled": self.stalled,
            "server": self.server.to_json(),
            "relay": self.relay.to_json(),
            "seconds": round(self.seconds, 2),
            "arrival_clock": self.arrival_clock,
        }

    @property
    def arrival_clock(self) -> str:
        if not self.unstamped_chunks:
            return "kernel receive timestamps (SO_TIMESTAMPNS)"
        return f"harness clock for {self.unstamped_chunks} received chunks (no kernel timestamps)"


Progress = Callable[[str], None]


def quiet(message: str) -> None:
    """A :data:`Progress` that says nothing."""


class GateRun:
    """Both targets started and connected; ``calibration_burst`` and
    ``server_burst`` run one round each.  Use as a context manager (the
    processes and sockets are always cleaned up)::

        with GateRun(Scenario()) as run:
            run.warm_up()
            for _ in range(run.scenario.rounds):
                run.calibration_burst()
                run.server_burst()
            measurement = run.measurement()
    """

    def __init__(self, scenario: Scenario, progress: Progress = quiet) -> None:
        self.scenario = scenario
        self.progress = progress
        self._stack = ExitStack()
        self._server_group: FanoutGroup | None = None
        self._relay_group: FanoutGroup | None = None
        self._server: list[BurstResult] = []
        self._relay: list[BurstResult] = []
        self._censored: BurstResult | None = None
        self._started = 0.0

    def __enter__(self) -> GateRun:
        self._started = time.monotonic()
        try:
            relay = self._stack.enter_context(relay_target())
            server, protocol_name = self._server_target()
            host, port = server.start()
            self._stack.callback(server.stop)
            scenario = self.scenario
            access = scenario.access
            if access.logins is not None:  # ours: the group's names, in its accounts file
                names = member_names(scenario.clients, scenario.stalled)
                server.enroll([(name, access.logins.for_client(i).password) for i, name in names])
            if scenario.target is not None:
                access = replace(access, tls=client_tls(access.tls, scenario.target))
            self.progress(f"relay on {relay.host}:{relay.port}, server on {host}:{port} ({protocol_name})")
            self._relay_group = FanoutGroup((relay.host, relay.port), self.scenario, stalled=0)
            self._stack.callback(self._relay_group.close)
            self._server_group = FanoutGroup((host, port), scenario, scenario.stalled, protocol_name, access)
            self._stack.callback(self._server_group.close)
        except (TargetError, ClientError) as exc:
            self._stack.close()
            raise GateError(str(exc)) from exc
        except BaseException:
            self._stack.close()
            raise
        self.progress(f"connected {self.scenario.describe()} to both targets")
        return self

    def _server_target(self) -> tuple[Target, str]:
        """The server under test (not started) and the protocol it is spoken to in."""
        scenario = self.scenario
        if scenario.target is None:
            return CommandTarget(scenario.server_argv(), "server"), "chat"
        return make_target(scenario.target, (), None, scenario.protocol, scenario.security), target_protocol(
            scenario.target, scenario.protocol
        )

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()

    def warm_up(self) -> None:
        assert self._relay_group is not None and self._server_group is not None
        for _ in range(self.scenario.warmup):
            self._relay_group.burst()
            if not self._server_group.broken:
                result = self._server_group.burst()
                if result.timed_out:
                    self.progress("server stalled during warm-up")

    def calibration_burst(self) -> BurstResult:
        assert self._relay_group is not None
        result = self._relay_group.burst()
        if result.timed_out:
            raise GateError(
                f"the calibration relay did not deliver a burst within {self.scenario.burst_timeout}s "
                f"({result.incomplete} receivers incomplete): the machine is too overloaded to measure"
            )
        self._relay.append(result)
        return result

    def server_burst(self) -> BurstResult:
        """One measured server round: :meth:`server_transfer` + :meth:`server_finish`."""
        self.server_transfer()
        return self.server_finish()

    def server_transfer(self) -> None:
        """The timed part of a server round (what pytest-benchmark times)."""
        assert self._server_group is not None
        if self._server_group.broken:
            # Stalled for good: this round is at least the timeout, without waiting for it.
            timeout_us = int(self.scenario.burst_timeout * 1e6)
            self._censored = BurstResult(timeout_us, timeout_us, timeout_us, 0, self.scenario.clients)
        else:
            self._server_group.transfer()

    def server_finish(self) -> BurstResult:
        """Decode and record the last :meth:`server_transfer`."""
        assert self._server_group is not None
        if self._censored is not None:
            result, self._censored = self._censored, None
        else:
            result = self._server_group.finish()
        self._server.append(result)
        n = len(self._server)
        ratio = result.fanout_us / max(1, self._relay[-1].fanout_us) if self._relay else float("nan")
        stalled = f"  STALLED ({result.incomplete} receivers incomplete)" if result.timed_out else ""
        self.progress(
            f"round {n:2d}: server {result.fanout_us / 1000:8.2f} ms"
            + (f", relay {self._relay[-1].fanout_us / 1000:7.2f} ms, ratio {ratio:5.2f}" if self._relay else "")
            + stalled
        )
        return result

    def next_round(self) -> None:
        """Between two timed server transfers: finish the previous server
        round, then run a calibration round.  Use as pytest-benchmark's
        ``setup``, with :meth:`server_transfer` as the target."""
        if self.server_pending:
            self.server_finish()
        self.calibration_burst()

    @property
    def server_pending(self) -> bool:
        assert self._server_group is not None
        return self._censored is not None or self._server_group.pending

    def complete_rounds(self) -> None:
        """Finish a pending server round and run interleaved rounds until
        ``scenario.rounds`` are done (pytest-benchmark runs the target only
        once when benchmarks are disabled)."""
        if self.server_pending:
            self.server_finish()
        while len(self._relay) < self.scenario.rounds or len(self._server) < self.scenario.rounds:
            if len(self._relay) <= len(self._server):
                self.calibration_burst()
            else:
                self.server_burst()

    @property
    def rounds_done(self) -> int:
        return min(len(self._server), len(self._relay))

    def measurement(self) -> Measurement:
        if not self._server or not self._relay:
            raise GateError("no rounds were measured")
        return Measurement(
            scenario=self.scenario,
            server=summarize("server", self._server),
            relay=summarize("calibration relay", self._relay),
            seconds=time.monotonic() - self._started,
            unstamped_chunks=sum(g.unstamped_chunks for g in (self._server_group, self._relay_group) if g is not None),
        )


def fast_half_mean(values: Sequence[float]) -> float:
    """Mean of the faster half of ``values`` (the middle one included).

    On a shared machine noise only ever adds time: a neighbour preempts the
    target mid-burst, a cache is cold.  The faster rounds are the ones that
    measure the code rather than the neighbours, and averaging half of them
    keeps the estimate stable (on the 2-core machine under load it separated
    unchanged and 2x-slower servers better than the median, the lower
    quartile or the minimum did)."""
    if not values:
        raise GateError("no values")
    ordered = sorted(values)
    return float(statistics.fmean(ordered[: (len(ordered) + 1) // 2]))


def summarize(label: str, results: Sequence[BurstResult]) -> TargetSummary:
    merged = LatencyHistogram()
    for result in results:
        merged.merge(result.histogram)
    return TargetSummary(
        label=label,
        fanout_us=tuple(r.fanout_us for r in results),
        p50_us=tuple(r.p50_us for r in results),
        p99_us=tuple(r.p99_us for r in results),
        timed_out=sum(1 for r in results if r.timed_out),
        incomplete_receivers=max((r.incomplete for r in results), default=0),
        latency=merged.summary(),
    )


def run_gate(scenario: Scenario, progress: Progress = quiet) -> Measurement:
    """Start both targets, warm up, run ``rounds`` interleaved rounds."""
    with GateRun(scenario, progress) as run:
        run.warm_up()
        for _ in range(scenario.rounds):
            run.calibration_burst()
            run.server_burst()
        return run.measurement()
