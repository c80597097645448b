"""The raw-socket swarm: honest fan-out latency and throughput.

``python -m bench run --help`` for the command line; from Python::

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

Modules, parent side: :mod:`~bench.swarm.config` (the run's options),
:mod:`~bench.swarm.plan` (who each worker connects, the schedule),
:mod:`~bench.swarm.run` (the phases), :mod:`~bench.swarm.pool` (the worker
processes), :mod:`~bench.swarm.document` (the result document); between the
processes :mod:`~bench.swarm.messages`; worker side :mod:`~bench.swarm.worker`
(the event loop), :mod:`~bench.swarm.registrar`, :mod:`~bench.swarm.sender`,
:mod:`~bench.swarm.receiver`, :mod:`~bench.swarm.connections`.
"""

from __future__ import annotations

from bench.results.schema import RunDocument
from bench.swarm.config import DEFAULT_SENDERS, SwarmConfig, SwarmError
from bench.swarm.plan import RX_CLOCKS
from bench.swarm.run import SwarmRun
from bench.swarm.series import Outputs
from bench.targets import TargetError

__all__ = ["DEFAULT_SENDERS", "RX_CLOCKS", "Outputs", "SwarmConfig", "SwarmError", "run_swarm"]


def run_swarm(config: SwarmConfig, outputs: Outputs | None = None) -> RunDocument:
    """Carry out one run and return its result document (not written
    anywhere); ``outputs``: live outputs and thresholds (:mod:`bench.live`)."""
    try:
        return SwarmRun(config, outputs).run()
    except TargetError as exc:
        raise SwarmError(str(exc)) from exc
