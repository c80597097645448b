"""The gate's verdict: measured ratios against the baseline.

:func:`compare` applies the rule (a ratio above ``baseline * (1 +
tolerance)`` fails; a stall fails everything), :func:`judge` adds the
measurement's context, and :func:`check` measures and judges, confirming a
failure with another measurement before it counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from bench.gate.baseline import METRIC_DESCRIPTIONS, SCENARIO_KEYS, Baseline
from bench.gate.run import Measurement, Progress, quiet, run_gate
from bench.gate.scenario import GateError, Scenario


@dataclass(frozen=True, slots=True)
class Verdict:
    """Pass or fail, with one line per gated metric and the context."""

    ok: bool
    #: One line per gated metric, failing or not.
    lines: tuple[str, ...]
    failures: tuple[str, ...]

    @property
    def message(self) -> str:
        head = "fan-out gate: PASS" if self.ok else "fan-out gate: REGRESSION"
        return "\n".join([head, *self.lines])


def compare(
    ratios: Mapping[str, float],
    baseline: Baseline,
    *,
    scenario: Mapping[str, int] | None = None,
    stalled_note: str | None = None,
) -> Verdict:
    """Check measured ratios against the baseline.  A ratio fails when it is
    above ``baseline * (1 + tolerance)``; ``stalled_note`` (the server did not
    deliver a burst at all) fails every metric, since the measured values are
    then only lower bounds."""
    if scenario is not None:
        for key in SCENARIO_KEYS:
            if scenario.get(key) != baseline.scenario.get(key):
                ours = ", ".join(f"{k}={scenario.get(k)}" for k in SCENARIO_KEYS)
                recorded = ", ".join(f"{k}={baseline.scenario.get(k)}" for k in SCENARIO_KEYS)
                raise GateError(
                    f"the measured scenario ({ours}) differs from the baseline's ({recorded}) "
                    f"in {baseline.path}; regenerate the baseline with `make bench-baseline`"
                )
    lines: list[str] = []
    failures: list[str] = []
    for name, metric in baseline.metrics.items():
        if name not in ratios:
            raise GateError(f"the measurement has no {name!r}, which the baseline {baseline.path} gates")
        measured = ratios[name]
        failed = measured > metric.limit or stalled_note is not None
        what = METRIC_DESCRIPTIONS.get(name, name)
        line = (
            f"{'FAIL' if failed else 'ok  '} {name} {'>=' if stalled_note else '='} {measured:.3f} "
            f"(baseline {metric.value:.3f}, tolerance +{metric.tolerance:.0%}, limit {metric.limit:.3f}"
            f"{f'; {measured / metric.value:.2f}x the baseline' if failed else ''}) -- {what}"
        )
        if stalled_note and failed:
            line += f"; {stalled_note}"
        lines.append(line)
        if failed:
            failures.append(name)
    lines.append(f"baseline: {baseline.path}")
    return Verdict(ok=not failures, lines=tuple(lines), failures=tuple(failures))


def judge(measurement: Measurement, baseline: Baseline) -> Verdict:
    """:func:`compare` for a :class:`Measurement`, with its context in the message."""
    stalled_note = None
    if measurement.stalled:
        stalled_note = (
            f"the server did not deliver a burst within {measurement.scenario.burst_timeout:g}s "
            f"({measurement.server.incomplete_receivers} of {measurement.scenario.clients} receivers incomplete)"
        )
    verdict = compare(measurement.ratios, baseline, scenario=measurement.scenario.key(), stalled_note=stalled_note)
    server, relay = measurement.server, measurement.relay
    at_least = ">= " if measurement.stalled else ""
    context = (
        f"measured: {measurement.scenario.describe()}, {len(server.fanout_us)} rounds; "
        f"fan-out server {at_least}{server.typical_fanout_us / 1000:.2f} ms "
        f"vs relay {relay.typical_fanout_us / 1000:.2f} ms; "
        f"median delivery server {at_least}{server.typical_p50_us / 1000:.2f} ms "
        f"vs relay {relay.typical_p50_us / 1000:.2f} ms "
        f"(means of the faster half of the rounds); arrival times: {measurement.arrival_clock}"
    )
    return replace(verdict, lines=(*verdict.lines, context))


def ratios_text(measurement: Measurement) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in measurement.ratios.items())


def check(
    scenario: Scenario,
    baseline: Baseline,
    progress: Progress = quiet,
    *,
    attempts: int = 2,
    first: Measurement | None = None,
) -> tuple[Verdict, list[Measurement]]:
    """Measure and judge.  A failure is confirmed by measuring again, up to
    ``attempts`` measurements in all: the gate fails only if every one of
    them fails, so one unlucky run on a busy machine does not fail CI, while
    a real slowdown fails every time.  A stall is not re-measured (it cannot
    be noise).  ``first``: an attempt already measured (by the pytest test)."""
    measurements: list[Measurement] = []
    verdict: Verdict | None = None
    for attempt in range(1, max(1, attempts) + 1):
        if attempt == 1 and first is not None:
            measurement = first
        else:
            if verdict is not None:
                progress(f"attempt {attempt - 1} failed ({', '.join(verdict.failures)}); measuring again to confirm")
            measurement = run_gate(scenario, progress)
        measurements.append(measurement)
        verdict = judge(measurement, baseline)
        if verdict.ok or measurement.stalled:
            break
    assert verdict is not None
    if len(measurements) > 1:
        history = tuple(
            f"attempt {i}: {ratios_text(m)}{' (failed)' if i < len(measurements) or not verdict.ok else ' (passed)'}"
            for i, m in enumerate(measurements, 1)
        )
        summary = (
            "an earlier attempt failed but the last one passed: treated as noise"
            if verdict.ok
            else f"all {len(measurements)} attempts failed"
        )
        verdict = replace(verdict, lines=(*verdict.lines, *history, summary))
    return verdict, measurements
