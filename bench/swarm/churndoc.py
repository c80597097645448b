"""The run document's sections about connections over time: ``connects``
(setup latencies by kind), ``churn`` and ``storm``, merged from the workers'
reports (:class:`~bench.swarm.messages.ChurnReport`; HDR histograms merged
exactly).  :mod:`bench.swarm.document` calls these; the prose is
``docs/results.md`` (*Churn and storms*).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from bench.measure.connects import ConnectLatency
from bench.measure.integrity import Window
from bench.measure.stats import LatencyHistogram
from bench.results.schema import (
    ChurnSection,
    ConnectSteps,
    IntervalSection,
    IntervalSeries,
    NoticeCheck,
    PhaseLatency,
    StormSection,
)
from bench.swarm.messages import ChurnReport, Result
from bench.swarm.plan import Schedule
from bench.swarm.series import histogram_doc
from bench.workload.labels import label_values
from bench.workload.membership import Churn

#: The storm's phases, in order.
PHASES = ("before", "during", "after")


def connects_section(results: Sequence[Result]) -> dict[str, ConnectSteps]:
    """``connects``: every kind's setup latencies, merged over the workers."""
    merged: dict[str, ConnectLatency] = {}
    for r in results:
        for kind, encoded in r.connects.items():
            merged.setdefault(kind, ConnectLatency()).merge(ConnectLatency.decode(encoded))
    return {kind: connect_steps(hists) for kind, hists in sorted(merged.items())}


def connect_steps(hists: ConnectLatency) -> ConnectSteps:
    """One kind's section; the TLS steps None when no handshake was made (plaintext)."""
    tls = hists.tls()
    secured = tls.count > 0
    return {
        "count": hists.total.count,
        "tcp_us": hists.tcp.summary(),
        "tls_us": tls.summary() if secured else None,
        "tls_full_us": hists.tls_full.summary() if secured else None,
        "tls_resumed_us": hists.tls_resumed.summary() if secured else None,
        "registration_us": hists.registration.summary(),
        "total_us": hists.total.summary(),
        "tls": dict(hists.negotiated),
        "histogram": histogram_doc(hists.total),
    }


def reports(results: Sequence[Result]) -> list[ChurnReport]:
    return [r.churn for r in results if r.churn is not None]


def window(parts: Sequence[ChurnReport]) -> Window:
    """The churned seats' memberships, summed over the workers."""
    out = Window()
    for part in parts:
        out.add(part.window)
    return out


def owed_by_label(parts: Sequence[ChurnReport]) -> dict[str, int]:
    """Per label, the measured deliveries the churned seats' memberships were owed."""
    out: Counter[str] = Counter()
    for part in parts:
        for key, (w, _) in part.labels.items():
            out[key] += w.owed_measured
    return dict(out)


def boundary_by_label(parts: Sequence[ChurnReport]) -> dict[str, int]:
    """Per label, the measured arrivals at churned seats that were not owed."""
    out: Counter[str] = Counter()
    for part in parts:
        for key, (w, _) in part.labels.items():
            out[key] += w.arrived_measured - (w.owed_measured - w.lost_measured)
    return dict(out)


def churn_section(churn: Churn, parts: Sequence[ChurnReport], notices: str | None) -> ChurnSection:
    """``churn``: what the workers did and what their churned seats got."""
    w = window(parts)
    leaves: Counter[str] = Counter()
    attempts: Counter[str] = Counter()
    failures: dict[str, Counter[str]] = {}
    for part in parts:
        leaves.update(part.leaves)
        attempts.update(part.attempts)
        for kind, reasons in part.failures.items():
            failures.setdefault(kind, Counter()).update(reasons)
    return {
        "leave_grace_s": churn.leave_grace_s,
        "leaves": dict(leaves),
        "replaced": sum(p.replaced for p in parts),
        "skipped": sum(p.skipped for p in parts),
        "attempts": dict(attempts),
        "failures": {kind: dict(reasons) for kind, reasons in sorted(failures.items())},
        "failed": sum(sum(reasons.values()) for reasons in failures.values()),
        "probes": sum(p.probes for p in parts),
        "memberships": sum(p.memberships for p in parts),
        "owed": w.owed,
        "lost": w.lost,
        "at_leave": w.at_leave,
        "arrived": w.arrived,
        "boundary": w.boundary,
        "owed_measured": w.owed_measured,
        "lost_measured": w.lost_measured,
        "joins_made": sum(p.joins_made for p in parts),
        "leaves_made": sum(p.leaves_made for p in parts),
        "notices": None if notices is None else notice_check(parts, notices),
    }


def notice_check(parts: Sequence[ChurnReport], notices: str) -> NoticeCheck:
    """Every steady receiver must see each join and each leave once."""
    receivers = sum(p.notice_receivers for p in parts)
    return {
        "notices": notices,
        "receivers": receivers,
        "joins_expected": receivers * sum(p.joins_made for p in parts),
        "joins_seen": sum(p.notice_joins for p in parts),
        "leaves_expected": receivers * sum(p.leaves_made for p in parts),
        "leaves_seen": sum(p.notice_leaves for p in parts),
    }


def storm_section(
    churn: Churn, parts: Sequence[ChurnReport], schedule: Schedule, series: IntervalSeries | None
) -> StormSection:
    """``storm``: when, how many, how long until all were back, what the steady receivers saw."""
    at = [p.storm_at_ns for p in parts if p.storm_at_ns]
    at_ns = min(at) if at else schedule.t0_ns + int(churn.storm_at_s * 1e9)
    seats = sum(p.storm_seats for p in parts)
    back = sum(p.storm_back for p in parts)
    last = max((p.storm_last_back_ns for p in parts), default=0)
    to_register = LatencyHistogram()
    failures: Counter[str] = Counter()
    for part in parts:
        to_register.merge(part.time_to_register.decode())
        failures.update(part.failures.get("storm", {}))
    at_s = (at_ns - schedule.t0_ns) / 1e9
    time_to_all = round((last - at_ns) / 1e9, 4) if back == seats and seats and last else None
    return {
        "at_s": round(at_s, 4),
        "percent": churn.storm_percent,
        "mode": churn.mode,
        "reconnect": churn.reconnect,
        "seats": seats,
        "dropped": sum(p.storm_left for p in parts),
        "back": back,
        "not_back": seats - back,
        "time_to_all_s": time_to_all,
        "time_to_register_us": to_register.summary(),
        "attempts": sum(p.attempts.get("storm", 0) for p in parts),
        "failures": dict(failures),
        "steady": phases(series, at_s, None if time_to_all is None else at_s + time_to_all),
    }


def phases(series: IntervalSeries | None, at_s: float, back_s: float | None) -> dict[str, PhaseLatency]:
    """The steady receivers' latency before, during and after a storm, from
    the measured intervals (whole intervals: the one holding the storm is
    *during*, and so is every one until the interval in which the last seat
    came back, or to the end of the sends)."""
    if series is None:
        return {}
    end_s = back_s if back_s is not None else series["send_end_s"]
    groups: dict[str, list[IntervalSection]] = {phase: [] for phase in PHASES}
    for section in series["intervals"]:
        if section["phase"] == "measured":
            groups[_phase_of(section, at_s, end_s)].append(section)
    out: dict[str, PhaseLatency] = {}
    for phase, picked in groups.items():
        if not picked:
            continue
        hist = LatencyHistogram()
        for section in picked:
            hist.merge(steady_histogram(section))
        out[phase] = {
            "start_s": round(picked[0]["start_s"], 4),
            "end_s": round(picked[-1]["start_s"] + picked[-1]["length_s"], 4),
            "intervals": len(picked),
            "latency_us": hist.summary(),
        }
    return out


def _phase_of(section: IntervalSection, at_s: float, end_s: float) -> str:
    start = section["start_s"]
    if start + section["length_s"] <= at_s:
        return "before"
    if start >= end_s and start > at_s:
        return "after"
    return "during"


def steady_histogram(section: IntervalSection) -> LatencyHistogram:
    """One interval's deliveries to the steady receivers (label ``membership=steady``)."""
    hist = LatencyHistogram()
    for part in section.get("labels", []):
        if label_values(part["label"]).get("membership") == "steady" and "histogram" in part:
            doc = part["histogram"]
            hist.merge(LatencyHistogram.decode(doc["data"], doc["clamped"]))
    return hist
