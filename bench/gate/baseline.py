"""The gate's committed baseline: load it, build a new one, write it.

A baseline (``bench/gate/baseline.json``) holds each gated ratio (server /
calibration relay) with its tolerance, the scenario it was measured with,
every run's ratios and where it was measured (machine information from
:func:`bench.results.machine.environment`, as every result of the harness).
"""

from __future__ import annotations

import datetime
import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from bench import results
from bench.gate.run import Measurement
from bench.gate.scenario import GateError
from bench.progname import PROG
from bench.results.machine import environment
from bench.results.schema import Environment

#: The gated metrics and their meaning, for messages.  Two different things:
#: how long the LAST receiver waits for the burst (the whole fan-out) and how
#: long the median delivery takes (the fixed cost before fan-out starts weighs
#: more there, the last recipients' cost less).  A per-delivery p99 is not a
#: third one: the burst is one write, so every probe has the same intended
#: time and the 99th percentile delivery is in the last receiver's last read,
#: equal to the fan-out time in every round (it was gated until 2026-12 and
#: was identical to fanout_ratio in every run).
METRIC_DESCRIPTIONS: dict[str, str] = {
    "fanout_ratio": "server fan-out time (burst start to the last receiver's last byte) / calibration relay's",
    "p50_ratio": "server median delivery latency (over every receiver and line) / calibration relay's",
}
#: The ratios a measurement reports (and a baseline run records): the gated ones.
REPORTED_RATIOS = tuple(METRIC_DESCRIPTIONS)

#: Tolerances used when no baseline exists yet (see bench/gate/baseline.json for
#: the committed ones and how they were chosen).
DEFAULT_TOLERANCES: dict[str, float] = {"fanout_ratio": 0.5, "p50_ratio": 0.5}

#: The committed baseline.
BASELINE_PATH = Path(__file__).with_name("baseline.json")
#: Bumped when the baseline document changes incompatibly.
BASELINE_SCHEMA = 1
#: Scenario fields that must match between a measurement and the baseline.
SCENARIO_KEYS = ("clients", "lines", "payload")
#: Machine-information keys of baselines written before the gate used
#: :func:`bench.results.machine.environment`, and their names there.
LEGACY_MACHINE_KEYS = {"cpu": "cpu_model", "cpus": "cpu_count", "loadavg_at_write": "load_average"}


class MetricDoc(TypedDict):
    value: float
    tolerance: float


class BaselineScenario(TypedDict):
    """The scenario a baseline was measured with (:data:`SCENARIO_KEYS` must match)."""

    clients: int
    lines: int
    payload: int
    rounds: int
    warmup: int
    fanout: str


class BaselineRun(TypedDict):
    """One ``--runs`` measurement: its ratios (:data:`REPORTED_RATIOS`) and both fan-out times."""

    fanout_ratio: float
    p50_ratio: float
    server_fanout_ms: float
    relay_fanout_ms: float


class BaselineDocument(TypedDict):
    """``bench/gate/baseline.json`` as :func:`build_baseline` writes it.  Read
    back, a file is validated key by key in :func:`load_baseline` (an older one
    may keep its machine information under :data:`LEGACY_MACHINE_KEYS`)."""

    schema: int
    about: str
    metrics: dict[str, MetricDoc]
    descriptions: dict[str, str]
    scenario: BaselineScenario
    runs: list[BaselineRun]
    created: str
    machine: Environment
    command: str
    note: str


@dataclass(frozen=True, slots=True)
class MetricBaseline:
    """One gated ratio: its recorded value and the fraction it may exceed it by."""

    value: float
    tolerance: float

    @property
    def limit(self) -> float:
        return self.value * (1.0 + self.tolerance)


@dataclass(frozen=True, slots=True)
class Baseline:
    """A loaded baseline document."""

    metrics: dict[str, MetricBaseline]
    scenario: dict[str, int]
    path: str = ""
    #: The file as read: json.loads output, untyped beyond what load_baseline checked.
    raw: Mapping[str, Any] = field(default_factory=dict)

    @property
    def machine(self) -> dict[str, Any]:  # untyped: an older file has other keys
        """Where it was measured, under :func:`bench.results.machine.environment`'s
        keys (baselines written before kept it under other names)."""
        machine = self.raw.get("machine") or {}
        return {LEGACY_MACHINE_KEYS.get(key, key): value for key, value in machine.items()}


def load_baseline(path: Path = BASELINE_PATH) -> Baseline:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise GateError(f"no baseline at {path}; create it with `{PROG} gate --write-baseline`") from exc
    except (OSError, ValueError) as exc:
        raise GateError(f"cannot read baseline {path}: {exc}") from exc
    try:
        if raw["schema"] != BASELINE_SCHEMA:
            raise GateError(f"baseline {path} has schema {raw['schema']}, expected {BASELINE_SCHEMA}")
        metrics = {
            name: MetricBaseline(float(entry["value"]), float(entry["tolerance"]))
            for name, entry in raw["metrics"].items()
        }
        scenario = {key: int(raw["scenario"][key]) for key in SCENARIO_KEYS}
    except (KeyError, TypeError, ValueError) as exc:
        raise GateError(f"baseline {path} is malformed ({exc!r}); regenerate it with `make bench-baseline`") from exc
    for name, metric in metrics.items():
        if metric.value <= 0 or metric.tolerance <= 0:
            raise GateError(f"baseline {path}: {name} needs a positive value and tolerance")
    return Baseline(metrics, scenario, str(path), raw)


def build_baseline(
    measurements: Sequence[Measurement],
    tolerances: Mapping[str, float],
    command: str,
    note: str = "",
) -> BaselineDocument:
    """The baseline document: for each gated metric the median over runs."""
    if not measurements:
        raise GateError("no measurements to build a baseline from")
    if any(m.stalled for m in measurements):
        raise GateError("the server stalled during a baseline run; refusing to record it as the baseline")
    scenario = measurements[0].scenario
    metrics: dict[str, MetricDoc] = {}
    for name in METRIC_DESCRIPTIONS:
        values = [m.ratios[name] for m in measurements]
        metrics[name] = {"value": round(statistics.median(values), 4), "tolerance": tolerances[name]}
    return {
        "schema": BASELINE_SCHEMA,
        "about": (
            "Fan-out regression gate (bench/gate/, tests/perf/test_perf_fanout.py). Each metric is a ratio "
            "server / calibration relay measured in the same run; the gate fails when a measured ratio exceeds "
            "value * (1 + tolerance). Regenerate with `make bench-baseline`."
        ),
        "metrics": metrics,
        "descriptions": METRIC_DESCRIPTIONS,
        "scenario": {
            "clients": scenario.clients,
            "lines": scenario.lines,
            "payload": scenario.payload,
            "rounds": scenario.rounds,
            "warmup": scenario.warmup,
            "fanout": scenario.fanout,
        },
        "runs": [_run_entry(m) for m in measurements],
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": environment(),
        "command": command,
        "note": note,
    }


def _run_entry(m: Measurement) -> BaselineRun:
    ratios = m.ratios
    return {
        "fanout_ratio": round(ratios["fanout_ratio"], 4),
        "p50_ratio": round(ratios["p50_ratio"], 4),
        "server_fanout_ms": round(m.server.typical_fanout_us / 1000, 3),
        "relay_fanout_ms": round(m.relay.typical_fanout_us / 1000, 3),
    }


def write_baseline(path: Path, document: BaselineDocument) -> None:
    """Write a baseline document (atomically, as every result)."""
    results.write_json(path, document)


def parse_tolerances(items: Sequence[str], existing: Mapping[str, float]) -> dict[str, float]:
    """The tolerances to record: ``METRIC=FRACTION`` items over ``existing``
    over :data:`DEFAULT_TOLERANCES`."""
    tolerances = {**DEFAULT_TOLERANCES, **existing}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in METRIC_DESCRIPTIONS:
            raise GateError(f"--tolerance wants METRIC=FRACTION with METRIC in {', '.join(METRIC_DESCRIPTIONS)}")
        try:
            tolerances[name] = float(value)
        except ValueError as exc:
            raise GateError(f"--tolerance {item}: {value!r} is not a number") from exc
        if tolerances[name] <= 0:
            raise GateError(f"--tolerance {item}: must be positive")
    return tolerances
