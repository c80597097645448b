"""The run document is built in one place, from what the workers reported and
what the plan owed: expected deliveries from the audience, labels merged
exactly across workers, integrity summed."""

from __future__ import annotations

import time

from bench.measure.integrity import IntegrityCounts
from bench.measure.labelled import EncodedHistogram
from bench.measure.sampler import ResourceSampler
from bench.measure.stats import LatencyHistogram
from bench.results.schema import TargetInfo
from bench.swarm.config import SwarmConfig
from bench.swarm.document import Collected, build_document
from bench.swarm.messages import LabelResult, Result
from bench.swarm.plan import ClientSpec, Schedule, client_specs, plan_of

TARGET: TargetInfo = {"kind": "external", "protocol": "chat", "address": "127.0.0.1:9", "pid": None}


def _hist(*values: int) -> EncodedHistogram:
    h = LatencyHistogram()
    for v in values:
        h.record(v)
    return EncodedHistogram.of(h)


def _result(worker: int, labels: dict[str, LabelResult], delivered: int) -> Result:
    return Result(
        worker=worker,
        labels=labels,
        send_lag=_hist(5),
        receive_lag=_hist(7),
        rx_clock="kernel",
        unstamped_reads=0,
        delivered_all=delivered,
        delivered_measured=delivered,
        last_measured_recv_ns=time.monotonic_ns(),
        integrity=IntegrityCounts(lost=sum(part.integrity.lost for part in labels.values())),
        echoes=0,
        lines=delivered,
        bytes_in=100 * delivered,
    )


def _collected(config: SwarmConfig, nodes: int) -> Collected:
    specs, _ = client_specs(config, "t", nodes)
    got = Collected(
        tag="t",
        started_at="2026-12-05T00:00:00+00:00",
        t_start=time.monotonic(),
        specs={c.cid: c for c in specs},
        workload=plan_of(specs, nodes=nodes),
        total_conns=len(specs),
    )
    got.registered = {c.cid for c in specs}
    got.receivers = sorted(c.cid for c in specs if c.receives)
    got.senders = sorted(c.cid for c in specs if c.slot is not None)
    got.schedule = Schedule(time.monotonic_ns(), config.rate, config.measured_messages, config.sender_count, 0, {})
    per_sender = config.measured_messages // config.sender_count
    got.sent = dict.fromkeys(got.senders, per_sender)
    got.measured = dict(got.sent)
    got.completed = True
    return got


def test_expected_is_the_plans_audience_and_one_label_means_no_label_sections() -> None:
    config = SwarmConfig(clients=5, senders=2, rate=100, messages=10, progress=False)
    got = _collected(config, nodes=1)
    # 2 senders x 5 messages, each to the 4 receivers but itself.
    got.worker_results = [_result(0, {"": LabelResult(_hist(100, 200), IntegrityCounts())}, 2)]
    doc = build_document(config, got, ResourceSampler(0.1).result(), TARGET)
    assert doc["deliveries"]["expected"] == 2 * 5 * 4
    assert doc["labels"] == []
    assert doc["latency_us"]["count"] == 2
    assert doc["schema_version"] == 2


def test_labels_are_merged_across_workers_and_owed_by_the_plan() -> None:
    config = SwarmConfig(clients=4, senders=2, rate=100, messages=10, progress=False)
    got = _collected(config, nodes=2)  # clients 0, 2 on node 0; 1, 3 on node 1; senders 0 and 1
    got.worker_results = [
        _result(
            0,
            {
                "path=same": LabelResult(_hist(100, 110), IntegrityCounts()),
                "path=cross": LabelResult(_hist(900), IntegrityCounts(lost=1)),
            },
            3,
        ),
        _result(1, {"path=same": LabelResult(_hist(120), IntegrityCounts())}, 1),
    ]
    doc = build_document(config, got, ResourceSampler(0.1).result(), TARGET)
    by_label = {s["label"]: s for s in doc["labels"]}
    assert set(by_label) == {"path=same", "path=cross"}
    # Per message: sender 0 is heard by 2 (same node) and 1, 3 (cross); sender 1 by 3 (same) and 0, 2 (cross).
    assert (by_label["path=same"]["expected"], by_label["path=cross"]["expected"]) == (5 + 5, 2 * 5 + 2 * 5)
    assert by_label["path=same"]["delivered"] == 3 and by_label["path=cross"]["delivered"] == 1
    assert by_label["path=cross"]["integrity"]["lost"] == 1 and by_label["path=cross"]["values"] == {"path": "cross"}
    # The run's histogram is the labels' exact merge.
    assert doc["latency_us"]["count"] == 4 and (doc["latency_us"]["max_us"] or 0) >= 899
    assert sum(s["expected"] for s in doc["labels"]) == doc["deliveries"]["expected"]
    assert doc["integrity"]["lost"] == 1


def test_a_dedicated_sender_is_heard_by_every_receiver() -> None:
    specs = [ClientSpec(0, "r0", True), ClientSpec(1, "r1", True), ClientSpec(2, "pub", False, slot=0)]
    plan = plan_of(specs)
    assert plan.expected({2: 10}, {0, 1}) == 20
    assert plan.expected({2: 10}, {0}) == 10  # only the receivers present
