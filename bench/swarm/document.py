"""The swarm's result document (``docs/results.md``), built from what a run collected.

:func:`build_document` is the only place that knows the document's layout;
:class:`Collected` is what the run phases hand it, and :func:`merge_results`
adds the workers' :class:`~bench.swarm.messages.Result` reports up (the
histograms merged exactly).
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from dataclasses import dataclass, field

from bench import results, wire
from bench.measure.integrity import IntegrityCounts
from bench.measure.stats import LatencyHistogram
from bench.results.machine import environment
from bench.results.schema import (
    Deliveries,
    Integrity,
    IntegrityPair,
    IntervalSeries,
    LabelSection,
    Resources,
    RoomBucket,
    RoomsSection,
    RunDocument,
    TargetInfo,
)
from bench.swarm import churndoc
from bench.swarm.config import SwarmConfig
from bench.swarm.messages import Result
from bench.swarm.plan import ClientSpec, Schedule
from bench.swarm.series import histogram_doc
from bench.workload import Plan, label_values
from bench.workload.labels import expected_by_label, size_bucket


@dataclass
class Collected:
    """Everything the run phases found, for the document."""

    tag: str  #: the run's random name tag (also in its id)
    started_at: str  #: when the run began (ISO 8601, UTC, seconds)
    t_start: float  #: time.monotonic() then: ``timing.total_s`` is counted from it
    specs: dict[int, ClientSpec]  #: client id -> spec, for the measured connections
    workload: Plan  #: who is in which room: the audience of every stream
    total_conns: int  #: measured connections asked for
    registered: set[int] = field(default_factory=set)
    receivers: list[int] = field(default_factory=list)
    senders: list[int] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    stalled_ok: int = 0
    schedule: Schedule | None = None
    completed: bool = False
    sent: dict[int, int] = field(default_factory=dict)
    measured: dict[int, int] = field(default_factory=dict)
    unsent_bytes: int = 0
    worker_results: list[Result] = field(default_factory=list)
    timing: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    intervals: IntervalSeries | None = None  #: the run over time (bench.swarm.series)


@dataclass
class LabelMerged:
    """One label's measurements, added up over the workers."""

    hist: LatencyHistogram = field(default_factory=LatencyHistogram)
    integrity: IntegrityCounts = field(default_factory=IntegrityCounts)


@dataclass
class Merged:
    """The workers' results added up."""

    labels: dict[str, LabelMerged] = field(default_factory=dict)
    send_lag: LatencyHistogram = field(default_factory=LatencyHistogram)
    receive_lag: LatencyHistogram = field(default_factory=LatencyHistogram)
    rx_clocks: set[str] = field(default_factory=set)
    unstamped: int = 0
    integrity: IntegrityCounts = field(default_factory=IntegrityCounts)
    by_pair: dict[tuple[int, int], IntegrityCounts] = field(default_factory=dict)
    disconnects: Counter[str] = field(default_factory=Counter)
    delivered: int = 0
    delivered_all: int = 0
    echoes: int = 0
    strays: int = 0
    shared_reads: int = 0
    lines: int = 0
    bytes_in: int = 0
    last_recv: int = 0

    @property
    def hist(self) -> LatencyHistogram:
        """Every measured delivery: the labels' histograms merged (exact)."""
        hist = LatencyHistogram()
        for part in self.labels.values():
            hist.merge(part.hist)
        return hist


def merge_results(worker_results: list[Result]) -> Merged:
    """Add up the workers' reports."""
    m = Merged()
    for r in worker_results:
        for key, part in r.labels.items():
            into = m.labels.setdefault(key, LabelMerged())
            into.hist.merge(part.latency.decode())
            into.integrity.add(part.integrity)
        m.send_lag.merge(r.send_lag.decode())
        m.receive_lag.merge(r.receive_lag.decode())
        m.rx_clocks.add(r.rx_clock)
        m.unstamped += r.unstamped_reads
        m.integrity.add(r.integrity)
        m.by_pair.update(r.by_pair)  # each receiver lives in one worker
        m.disconnects.update(r.disconnects)
        m.delivered += r.delivered_measured
        m.delivered_all += r.delivered_all
        m.echoes += r.echoes
        m.strays += r.strays
        m.shared_reads += r.shared_reads
        m.lines += r.lines
        m.bytes_in += r.bytes_in
        m.last_recv = max(m.last_recv, r.last_measured_recv_ns)
    return m


def integrity_doc(counts: IntegrityCounts) -> Integrity:
    return {
        "lost": counts.lost,
        "duplicated": counts.duplicated,
        "reordered": counts.reordered,
        "corrupted": counts.corrupted,
        "faults": counts.faults,
    }


def steady_present(got: Collected) -> set[int]:
    """The receivers present whose expectations come from the plan's audience
    (with churn: the steady ones; the churned seats' come from their memberships)."""
    plan = got.workload
    return {cid for cid in got.receivers if plan.steady(cid)}


def _label_sections(got: Collected, merged: Merged) -> list[LabelSection]:
    """``labels``: per label, what was owed (the plan's audience; with churn
    plus the churned seats' memberships), what arrived and its latency;
    empty when no label dimension applies to the run (its one label is the
    whole run)."""
    if list(merged.labels) in ([], [""]):
        return []
    expected = Counter(expected_by_label(got.workload, got.measured, steady_present(got)))
    expected.update(churndoc.owed_by_label(churndoc.reports(got.worker_results)))
    sections: list[LabelSection] = []
    for key in sorted(set(merged.labels) | set(expected)):
        part = merged.labels.get(key, LabelMerged())
        sections.append(
            {
                "label": key,
                "values": label_values(key),
                "expected": expected.get(key, 0),
                "delivered": part.hist.count,
                "latency_us": part.hist.summary(),
                "integrity": integrity_doc(part.integrity),
                "histogram": histogram_doc(part.hist),
            }
        )
    return sections


def _notes(notes: list[str], merged: Merged, resources: Resources, target: TargetInfo) -> None:
    """What a reader must know to trust the figures, appended to ``notes``."""
    if resources["saturated_workers"]:
        notes.append(
            "load generator saturated: worker(s) "
            + ", ".join(resources["saturated_workers"])
            + " were running or waiting for a CPU >= 90% of the traffic window; latency and throughput "
            "may be the harness's limits"
        )
    if merged.unstamped:
        notes.append(
            f"{merged.unstamped} reads came without a kernel receive stamp; they were timed when read (--rx-clock read)"
        )
    if merged.integrity.lost and merged.disconnects:
        notes.append(f"receivers disconnected during the run: {dict(merged.disconnects)}")
    logged = target.get("faults_logged") or []
    if logged:  # a broker cut clients off or refused them: its own words
        notes.append(f"{target['kind']} cut off or refused clients ({len(logged)} log line(s)), first: {logged[0]}")


def _integrity(plan: Plan, counts: IntegrityCounts, merged: Merged) -> Integrity:
    """The run's integrity counters; with several rooms also its strays (a
    delivery in a room the receiver is not in), which count as faults."""
    out: Integrity = {**integrity_doc(counts), "pairs": _pairs(merged)}
    if len(plan.rooms) > 1:
        out["strays"] = merged.strays
        out["faults"] += merged.strays
    return out


def _pairs(merged: Merged) -> list[IntegrityPair]:
    """``integrity.pairs``: the counters per (receiver, sender) with a fault."""
    return [
        IntegrityPair(
            receiver=receiver,
            sender=sender,
            lost=c.lost,
            duplicated=c.duplicated,
            reordered=c.reordered,
            corrupted=c.corrupted,
        )
        for (receiver, sender), c in sorted(merged.by_pair.items())
    ]


def _deliveries(config: SwarmConfig, got: Collected, merged: Merged) -> Deliveries:
    """The ``deliveries`` section: expected (the plan's audience of every
    stream, of the receivers present) against delivered, and the rate."""
    schedule = got.schedule
    assert schedule is not None
    present = steady_present(got)
    expected = got.workload.expected(got.measured, present)
    expected_all = got.workload.expected(got.sent, present)
    delivered = merged.delivered
    churned = churndoc.reports(got.worker_results)
    boundary = 0
    if churned:  # the churned seats' memberships: what they were owed, and what arrived but was not owed
        window = churndoc.window(churned)
        expected += window.owed_measured
        expected_all += window.owed
        boundary = window.arrived_measured - (window.owed_measured - window.lost_measured)
    send_span = config.measured_messages / config.total_rate if config.rate > 0 else 0.0
    last_recv = merged.last_recv
    recv_span = max(0.0, (last_recv - schedule.measure_start_ns) / 1e9) if last_recv else 0.0
    span = max(send_span, recv_span)
    out: Deliveries = {
        "expected": expected,
        "delivered": delivered,
        "delivered_ratio": round((delivered - boundary) / expected, 6) if expected else None,
        "per_s": round(delivered / span, 1) if span > 0 else None,
        "offered_per_s": round(expected / send_span, 1) if send_span > 0 else None,
        "span_s": round(span, 4),
        "expected_all": expected_all,
        "delivered_all": merged.delivered_all,
        "echoes": merged.echoes,
        "strays": merged.strays,
        "lines_received": merged.lines,
        "bytes_received": merged.bytes_in,
    }
    if churned:
        out["boundary"] = boundary
    return out


def build_document(config: SwarmConfig, got: Collected, resources: Resources, target: TargetInfo) -> RunDocument:
    """The result document of one run, built once the target has stopped
    (``target`` describes it then: its exit code and the end of its log);
    ``timing.total_s`` runs from ``got.t_start`` to this moment."""
    schedule = got.schedule
    assert schedule is not None
    merged = merge_results(got.worker_results)
    _notes(got.notes, merged, resources, target)
    hist, integrity, disconnects, rx_clocks = merged.hist, merged.integrity, merged.disconnects, merged.rx_clocks
    total_sent = sum(got.sent.values())
    deliveries = _deliveries(config, got, merged)
    doc: RunDocument = {
        "schema_version": results.SCHEMA_VERSION,
        "kind": results.RUN_KIND,
        "run_id": f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{got.tag}",
        "label": config.label,
        "parameters": config.parameters(),
        "environment": environment(),
        "connections": {
            # --clients and --stalled-clients; a broker's dedicated senders are apart
            "requested": config.clients + config.stalled_clients,
            "dedicated_senders": got.total_conns - config.clients,
            "registered": len(got.registered),
            "receivers": len(got.receivers),
            "senders": len(got.senders),
            "stalled": got.stalled_ok,
            "failed": sum(got.failures.values()),
            "failures": dict(got.failures),
            "disconnected_during_run": sum(disconnects.values()),
            "disconnect_reasons": dict(disconnects),
        },
        "messages": {
            "scheduled": schedule.total,
            "warmup": schedule.warmup,
            "sent": total_sent,
            "measured_sent": sum(got.measured.values()),
            "unsent": schedule.total - total_sent,
            "unsent_bytes": got.unsent_bytes,
        },
        "deliveries": deliveries,
        "completed": got.completed,
        "latency_us": hist.summary(),
        "labels": _label_sections(got, merged),
        "send_lag_us": merged.send_lag.summary(),
        "rx_clock": rx_clocks.pop() if len(rx_clocks) == 1 else ("mixed" if rx_clocks else config.rx_clock),
        "receive_lag_us": merged.receive_lag.summary() if merged.receive_lag.count else None,
        "shared_reads": merged.shared_reads,
        "integrity": _integrity(got.workload, integrity, merged),
        "resources": resources,
        "load_generator_saturated": bool(resources["saturated_workers"]),
        "histogram": histogram_doc(hist),
        "timing": {**got.timing, "total_s": round(time.monotonic() - got.t_start, 3)},
        "notes": got.notes,
        "connects": churndoc.connects_section(got.worker_results),
        "target": target,
        "started_at": got.started_at,
    }
    rooms = rooms_section(got.workload)
    if rooms is not None:
        doc["rooms"] = rooms
    if got.intervals is not None:
        doc["intervals"] = got.intervals
    _churn_sections(config, got, doc)
    return doc


def _churn_sections(config: SwarmConfig, got: Collected, doc: RunDocument) -> None:
    """``churn`` and ``storm`` of a run with membership over time, and what a reader must know about them."""
    parts = churndoc.reports(got.worker_results)
    if not parts:
        return
    notices = wire.get(config.protocol_name).notices
    churn = doc["churn"] = churndoc.churn_section(config.churn, parts, notices)
    schedule = got.schedule
    assert schedule is not None
    if config.churn.storm:
        doc["storm"] = churndoc.storm_section(config.churn, parts, schedule, got.intervals)
    if notices is None:
        got.notes.append(f"{config.target} has no join/leave notices: none are counted")
    check = churn["notices"]
    if check is not None and (
        check["joins_seen"] != check["joins_expected"] or check["leaves_seen"] != check["leaves_expected"]
    ):
        got.notes.append(
            f"join/leave notices at the steady receivers: {check['joins_seen']}/{check['joins_expected']} joins, "
            f"{check['leaves_seen']}/{check['leaves_expected']} leaves (a server may stay silent in large rooms: "
            "ours above --announce-limit members)"
        )
    if doc["messages"]["unsent"]:
        got.notes.append(
            "some messages were never sent: a churned seat's membership owes what the timetable intended, "
            "so its losses may count messages that were not sent"
        )


def rooms_section(plan: Plan) -> RoomsSection | None:
    """``rooms``: the sizes of a run's rooms (receiving members), as a
    histogram and by ``room_size`` label value; None with one room."""
    if len(plan.rooms) < 2:
        return None
    sizes = [len(room.members) for room in plan.rooms]
    streams_in = Counter(stream.room for stream in plan.streams.values())
    buckets: dict[str, RoomBucket] = {}
    for r, size in enumerate(sizes):
        key = size_bucket(max(1, size))
        part = buckets.setdefault(key, {"bucket": key, "rooms": 0, "members": 0, "streams": 0})
        part["rooms"] += 1
        part["members"] += size
        part["streams"] += streams_in[r]
    return {
        "rooms": len(sizes),
        "streams": len(plan.streams),
        "sending_clients": len({stream.sender for stream in plan.streams.values()}),
        "memberships": sum(sizes),
        "smallest": min(sizes),
        "largest": max(sizes),
        "sizes": [{"size": size, "rooms": count} for size, count in sorted(Counter(sizes).items())],
        "buckets": [buckets[key] for key in sorted(buckets, key=lambda k: int(k.split("-")[0]))],
    }
