"""The documents the harness writes have exactly the keys (and value types) of
their TypedDicts, so what mypy checks is what the JSON holds."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import types
import typing
from typing import Any, Literal, NotRequired, TypedDict

import pytest

from bench import gate, wire
from bench.gate.baseline import BaselineDocument
from bench.gate.run import MeasurementDoc, ScenarioDoc
from bench.loadtest.document import FanoutHdrDocument, HistogramDelta, pack_delta
from bench.measure.sampler import ResourceSampler
from bench.measure.stats import REPORTED_PERCENTILES, LatencyHistogram, percentile_key
from bench.results import machine, schema
from bench.studies import onebroadcast
from bench.studies.replay import ReplayDocument
from bench.swarm import SwarmConfig, run_swarm
from bench.targets import EmbeddedTarget, ExternalTarget
from bench.wire.base import ProtocolInfo
from bench.workload import Workload
from bench.workload.membership import Churn

pytestmark = pytest.mark.timeout(90)

#: Seconds a subprocess of these tests may take (a small replay).
SUBPROCESS_TIMEOUT_S = 60


def conforms(td: Any, value: object, path: str = "$") -> list[str]:
    """Where ``value`` differs from TypedDict ``td``: missing or extra keys,
    values of another type (nested TypedDicts, lists and unions followed)."""
    if not isinstance(value, dict):
        return [f"{path}: {type(value).__name__}, expected an object"]
    hints = typing.get_type_hints(td, include_extras=True)
    problems = [f"{path}.{k}: missing" for k in sorted(required(td)) if k not in value]
    problems += [f"{path}.{k}: not in {td.__name__}" for k in value if k not in hints]
    for key, item in value.items():
        if key in hints:
            problems += _matches(hints[key], item, f"{path}.{key}")
    return problems


def _matches(hint: Any, value: object, path: str) -> list[str]:
    origin = typing.get_origin(hint)
    if origin is NotRequired:
        return _matches(typing.get_args(hint)[0], value, path)
    if origin in (types.UnionType, typing.Union):
        tries = [_matches(arg, value, path) for arg in typing.get_args(hint)]
        return [] if any(not t for t in tries) else min(tries, key=len)
    if origin is Literal:
        return [] if value in typing.get_args(hint) else [f"{path}: {value!r} not in {hint}"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: {type(value).__name__}, expected a list"]
        return [p for i, v in enumerate(value) for p in _matches(typing.get_args(hint)[0], v, f"{path}[{i}]")]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, expected an object"]
        return [p for k, v in value.items() for p in _matches(typing.get_args(hint)[1], v, f"{path}.{k}")]
    if typing.is_typeddict(hint):
        return conforms(hint, value, path)
    if hint is Any:
        return []
    if hint is type(None):
        return [] if value is None else [f"{path}: {value!r}, expected null"]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return []  # JSON has one number type; an integral float may come back as an int
    if hint is int and isinstance(value, bool):
        return [f"{path}: a bool, expected int"]
    return [] if isinstance(value, hint) else [f"{path}: {type(value).__name__}, expected {hint.__name__}"]


def required(td: Any) -> set[str]:
    """``td.__required_keys__`` misses NotRequired written as a string (3.11,
    ``from __future__ import annotations``): read the annotations instead."""
    hints = typing.get_type_hints(td, include_extras=True)
    optional = {k for k, h in hints.items() if typing.get_origin(h) is NotRequired}
    return set(td.__required_keys__) - optional - set(td.__optional_keys__)


def keys(td: Any) -> set[str]:
    return set(td.__required_keys__ | td.__optional_keys__)


class Inner(TypedDict):
    n: int


class Outer(TypedDict):
    inner: Inner | None
    items: list[Inner]
    note: NotRequired[str]


def test_the_checker_finds_missing_extra_and_mistyped_keys() -> None:
    assert conforms(Outer, {"inner": None, "items": [{"n": 1}]}) == []
    assert conforms(Outer, {"inner": {"n": "1"}, "items": [], "extra": 1}) == [
        "$.extra: not in Outer",
        "$.inner.n: str, expected int",
    ]
    assert conforms(Outer, {"items": [{}]}) == ["$.inner: missing", "$.items[0].n: missing"]


def test_a_swarm_run_document_is_a_run_document_in_the_same_key_order() -> None:
    config = SwarmConfig(clients=4, rate=0, messages=20, workers=1, sample_interval_s=0.2, progress=False)
    doc = json.loads(json.dumps(run_swarm(config)))
    assert conforms(schema.RunDocument, doc) == []
    assert list(doc)[-3:] == ["target", "started_at", "intervals"]  # as before the types, then the time axis
    assert next(iter(doc["parameters"])) == "clients"
    assert list(doc["timing"])[-1] == "total_s"
    assert doc["timing"]["total_s"] >= doc["timing"]["traffic_s"]


def test_parameters_hold_every_config_field_but_progress() -> None:
    config = SwarmConfig(clients=7, senders=3)
    params = config.parameters()
    # The workload is recorded only where it is not the one room, the churn only
    # where membership changes (older documents stay as they were).
    fields = {f.name for f in dataclasses.fields(SwarmConfig)} - {"progress", "workload", "churn"}
    assert fields <= set(params) and "workload" not in params and "churn" not in params
    rooms = SwarmConfig(clients=7, workload=Workload(rooms=2, seed=5)).parameters()
    assert rooms["workload"]["rooms"] == 2 and rooms["workload"]["seed"] == 5
    churned = SwarmConfig(clients=7, senders=3, rate=10, churn=Churn(rate=2.0)).parameters()
    assert churned["churn"]["rate"] == 2.0
    assert set(params) | {"workload", "churn"} == keys(schema.RunParameters)
    assert conforms(schema.RunParameters, params) == [] and conforms(schema.RunParameters, rooms) == []
    assert conforms(schema.RunParameters, churned) == []
    series = config.series_parameters()
    assert series == {k: v for k, v in params.items() if k != "clients"}
    assert conforms(schema.SeriesParameters, series) == []


def test_environment_is_an_environment() -> None:
    assert conforms(schema.Environment, machine.environment()) == []


def test_histogram_summaries_are_latencies() -> None:
    hist = LatencyHistogram()
    assert conforms(schema.Latency, hist.summary()) == []
    for value in (120, 250, 4000):
        hist.record(value)
    summary = hist.summary()
    assert conforms(schema.Latency, summary) == []
    assert {percentile_key(p) for p in REPORTED_PERCENTILES} <= set(summary)
    assert summary["count"] == 3 and summary["max_us"] == hist.max


def test_sampler_resources_are_resources() -> None:
    sampler = ResourceSampler(0.05)
    assert sampler.watch("server", os.getpid(), "server") and sampler.watch("worker-0", os.getpid(), "worker")
    sampler.start()
    sampler.window_start()
    time.sleep(0.15)
    sampler.window_end()
    sampler.stop()
    resources = json.loads(json.dumps(sampler.result()))
    assert conforms(schema.Resources, resources) == []
    assert resources["server"] is not None and resources["server"]["samples"]["t_s"]


def test_target_descriptions_are_target_infos() -> None:
    external = ExternalTarget("127.0.0.1", 6667, pid=None, protocol="irc")
    assert conforms(schema.TargetInfo, external.describe()) == []
    target = EmbeddedTarget(["--fanout", "direct"])
    try:
        target.start()
    finally:
        target.stop()
    described = target.describe()
    assert conforms(schema.TargetInfo, described) == []
    assert described["server_options"] == ["--fanout", "direct"] and described["exit_code"] is not None


@pytest.mark.parametrize("name", wire.PROTOCOLS)
def test_protocol_descriptions_are_protocol_infos(name: str) -> None:
    described = wire.get(name).describe()
    assert conforms(ProtocolInfo, described) == []
    assert described["protocol"] == name


def _measurement() -> gate.Measurement:
    latency = LatencyHistogram()
    latency.record(900)
    server = gate.TargetSummary("server", (1000, 1100), (500, 600), (900, 950), 0, 0, latency.summary())
    relay = gate.TargetSummary("relay", (800, 900), (400, 450), (700, 750), 0, 0, latency.summary())
    return gate.Measurement(gate.Scenario(), server, relay, 1.0)


def test_gate_documents_match_their_types() -> None:
    m = _measurement()
    measured = json.loads(json.dumps(m.to_json()))
    assert conforms(MeasurementDoc, measured) == []
    assert set(measured["scenario"]) == {f.name for f in dataclasses.fields(gate.Scenario)} == keys(ScenarioDoc)
    document = gate.build_baseline([m, m], gate.DEFAULT_TOLERANCES, "python -m bench gate --write-baseline")
    assert conforms(BaselineDocument, json.loads(json.dumps(document))) == []
    assert set(document["runs"][0]) == {*gate.REPORTED_RATIOS, "server_fanout_ms", "relay_fanout_ms"}
    assert set(document["scenario"]) >= set(gate.SCENARIO_KEYS)


#: Run in a subprocess: importing Locust monkey-patches (gevent) the process that imports it.
HDR_RESULT = (
    "import json; from bench.loadtest.hdr import FanoutRecorder; from bench.loadtest.timeline import IntervalRecorder; "
    "r = FanoutRecorder(); r.labels['clock=same'].record(1500); t = IntervalRecorder(); t.record(1500, 10**18); "
    "r.intervals.add(t.pack(t.close(0, final=True))); print(json.dumps(r.result()))"
)


def test_locust_hdr_documents_match_their_types() -> None:
    out = subprocess.run(
        [sys.executable, "-c", HDR_RESULT], capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S, check=True
    )
    document = json.loads(out.stdout)
    assert conforms(FanoutHdrDocument, document) == []
    assert document["summary"]["count"] == 1
    assert [section["delivered"] for section in document["intervals"]] == [1]
    hist = LatencyHistogram()
    hist.record(1500)
    assert conforms(HistogramDelta, pack_delta(hist)) == []


def test_replay_json_is_a_replay_document() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench", "replay", "--deliveries", "4000", "--repeat", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_S,
        check=True,
    )
    document = json.loads(out.stdout)
    assert conforms(ReplayDocument, document) == []
    assert document["runs"] and document["runs"][0]["delivered"] == 4000


def test_onebroadcast_result_is_typed() -> None:
    result = onebroadcast.measure(onebroadcast.Study(clients=3, rounds=2, fanout="queued"))
    assert conforms(onebroadcast.OneBroadcastResult, json.loads(json.dumps(result))) == []
    assert len(result["rounds"]) == 2
