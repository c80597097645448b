"""CI regression gate on broadcast fan-out latency.

Absolute times mean nothing on a shared 2-core CI machine, so the gate never
compares them.  It measures two things side by side, in the same run, with
the same client code:

* the **server** (``python -m server``, a subprocess) relaying a burst of
  chat lines from one sender to N receivers, and
* a **calibration relay** (``python -m bench.targets.relay``, also a
  subprocess): the least a Python chat relay can do -- the same handshake,
  the same ``NAME: TEXT`` bytes (encoded by :mod:`server.protocol`), one
  blocking ``sendall`` per receiver, nothing else,

and gates on their **ratio** (server time / relay time).  Machine speed and
background load hit both, so they cancel out; a server that becomes slower
at fan-out does not cancel out.  Rounds alternate relay, server, relay,
server, ..., so both see the same machine moment by moment.

Why subprocesses: a server in the test process would share the GIL with the
measuring clients, and the measurement would partly time the harness
against itself.  Both targets run as their own process, so the comparison
is fair, and the server is started exactly as a user starts it.

The measuring clients run in one thread over one ``selectors`` loop.
Arrival times are the kernel's receive timestamps (``SO_TIMESTAMPNS``):
when the bytes reached the receiver's socket, which on loopback is when the
target's ``send`` ran -- not when the harness, competing for two cores with
everything else, got around to reading them.  (Without kernel stamps the
harness clock is used and the measurement says so.)  The hot loop only
receives; decoding (through :mod:`server.protocol`) and probe checking
(:mod:`bench.measure.probe`) happen after each burst.  A receiver is done when it
has the exact number of bytes the burst must produce (computed with
``protocol.encode_message``); afterwards every line is decoded and every
probe checked (sender, order, checksum), so a wrong, lost or extra line
fails the run instead of skewing it.

Per round and target:

* ``fanout`` -- time from the start of the burst until every receiver has
  every line;
* ``p50`` / ``p99`` -- per-delivery latency (probe's intended send time to
  arrival at one receiver), over all receivers and lines of the round.

Each is then summarised over the rounds by the mean of the faster half
(:func:`fast_half_mean`: noise only adds time), and the ratios are
server / relay.  Gated: ``fanout_ratio`` (the last receiver's wait) and
``p50_ratio`` (the median delivery's).  A per-delivery p99 would be neither:
the burst is one write, so all its probes share one intended time and the
p99 delivery lies in the last receiver's last read -- the fan-out time again
(it was gated until 2026-12, identical to ``fanout_ratio`` in every run).
The committed baseline (``bench/gate/baseline.json``) holds each gated
ratio with its tolerance; a measured ratio above ``baseline * (1 +
tolerance)`` fails.  A failure is measured again before it
counts (:func:`check`); a server that stalls fails at once.

Modules: :mod:`~bench.gate.scenario` (the fixed scenario, its limits),
:mod:`~bench.gate.burst` (one group of clients on one target, measuring
bursts), :mod:`~bench.gate.run` (both targets, interleaved rounds, the
measurement), :mod:`~bench.gate.baseline` (the committed baseline),
:mod:`~bench.gate.verdict` (compare, judge, confirm) and
:mod:`~bench.gate.cli` (``python -m bench gate``).  Targets are started by
:mod:`bench.targets` and clients registered by :mod:`bench.wire.client`,
as everywhere in the harness.

Command line::

    python -m bench gate                    # measure, compare, exit 1 on regression
    python -m bench gate --write-baseline   # measure --runs times, write bench/gate/baseline.json
    python -m bench gate --fanout direct --stalled 1   # the regression the gate must catch
    python -m bench gate --server-command "python tests/perf/slow_server.py 2 --port 0 --log-level INFO"
"""

from bench.gate.baseline import (
    BASELINE_PATH,
    BASELINE_SCHEMA,
    DEFAULT_TOLERANCES,
    METRIC_DESCRIPTIONS,
    REPORTED_RATIOS,
    SCENARIO_KEYS,
    Baseline,
    MetricBaseline,
    build_baseline,
    load_baseline,
    write_baseline,
)
from bench.gate.burst import BurstResult, FanoutGroup
from bench.gate.run import GateRun, Measurement, Progress, TargetSummary, fast_half_mean, run_gate
from bench.gate.scenario import GateError, Scenario
from bench.gate.verdict import Verdict, check, compare, judge

__all__ = [
    "BASELINE_PATH",
    "BASELINE_SCHEMA",
    "DEFAULT_TOLERANCES",
    "METRIC_DESCRIPTIONS",
    "REPORTED_RATIOS",
    "SCENARIO_KEYS",
    "Baseline",
    "BurstResult",
    "FanoutGroup",
    "GateError",
    "GateRun",
    "Measurement",
    "MetricBaseline",
    "Progress",
    "Scenario",
    "TargetSummary",
    "Verdict",
    "build_baseline",
    "check",
    "compare",
    "fast_half_mean",
    "judge",
    "load_baseline",
    "run_gate",
    "write_baseline",
]
