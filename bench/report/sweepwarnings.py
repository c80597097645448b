"""The sweep report's warnings in plain words (load generator saturated,
integrity faults, failed connections, incomplete or failed runs...) and the
per-run flags that also draw hollow markers: what :mod:`bench.report.sweep`
puts at the top of a report and prints after a sweep."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from bench.report import fmt
from bench.results.schema import RunDocument

if TYPE_CHECKING:
    from bench.report.sweep import SeriesData


def worker_demand(run: RunDocument) -> tuple[float, float]:
    """Mean CPU % and mean run-queue wait % of the load generator's workers
    over the traffic window."""
    workers = (run.get("resources") or {}).get("workers") or []
    busy = [float(w["summary"].get("cpu_percent_window") or 0.0) for w in workers]
    wait = [float(w["summary"].get("runqueue_wait_percent_window") or 0.0) for w in workers]
    n = max(1, len(workers))
    return sum(busy) / n, sum(wait) / n


def run_warnings(run: RunDocument) -> list[str]:
    """Short flags for one run (also used to draw hollow markers)."""
    flags = []
    if run.get("load_generator_saturated"):
        flags.append("load generator saturated")
    if run["integrity"]["faults"]:
        flags.append("integrity faults")
    if run["connections"]["failed"]:
        flags.append("failed connections")
    if not run.get("completed", True) or run["messages"].get("unsent"):
        flags.append("incomplete")
    return flags


def _points(items: Sequence[tuple[str, int]]) -> str:
    """[("queued", 500), ("queued", 1000), ("direct", 1000)] -> 'queued: 500, 1000 clients; direct: 1000 clients'."""
    by: dict[str, list[int]] = {}
    for label, clients in items:
        by.setdefault(label, []).append(clients)
    return "; ".join(f"{label}: {', '.join(str(c) for c in counts)} clients" for label, counts in by.items())


#: (label, run) over every series: what the warning checks read.
Labelled = list[tuple[str, RunDocument]]


def _failed_points(series: Sequence[SeriesData], total: int) -> str | None:
    failed = [(s.label, e) for s in series for e in s.failed]
    if not failed:
        return None
    detail = "; ".join(f"{label} {e.get('clients')} clients: {e.get('error') or 'no result'}" for label, e in failed)
    points = fmt.plural(total, "point")
    return f"**{len(failed)} of {points} have no result**, so the charts and table leave them out: {detail}."


def _saturated(all_runs: Labelled, total: int) -> str | None:
    saturated = [(label, r) for label, r in all_runs if r.get("load_generator_saturated")]
    if not saturated:
        return None
    detail = "; ".join(
        f"{label} {r['parameters']['clients']} clients: workers busy {busy:.0f}%, waiting for a CPU {wait:.0f}%"
        for label, r in saturated
        for busy, wait in [worker_demand(r)]
    )
    return (
        f"**Load generator saturated** in {len(saturated)} of {fmt.plural(total, 'run')}: the harness's worker "
        "processes were busy, or runnable but waiting for a CPU, for at least 90% of the traffic window "
        f"({detail}; averages per worker). Waiting means the cores were held by the server or by other load "
        "on the machine. These runs' latency and throughput may describe the load generator and the machine "
        "more than the server; fewer clients, a lower rate or more cores give cleaner numbers."
    )


def _integrity(all_runs: Labelled) -> str | None:
    faulty = [(label, r) for label, r in all_runs if r["integrity"]["faults"]]
    if not faulty:
        return None
    parts = []
    for label, r in faulty:
        i = r["integrity"]
        kinds = fmt.counts(
            {
                "lost": i["lost"],
                "duplicated": i["duplicated"],
                "reordered": i["reordered"],
                "corrupted": i["corrupted"],
                "strays": i.get("strays", 0),
            }
        )
        parts.append(f"{label} {r['parameters']['clients']} clients: {kinds}")
    return (
        f"**Integrity faults** in {fmt.plural(len(faulty), 'run')}: {'; '.join(parts)}. Lost means a message a "
        "client should have received never arrived; duplicated, reordered and corrupted mean "
        "the server delivered it wrongly; strays, that it delivered a room's message to a client not in the room."
    )


def _failed_connections(all_runs: Labelled) -> str | None:
    conn = [(label, r) for label, r in all_runs if r["connections"]["failed"]]
    if not conn:
        return None
    parts = []
    for label, r in conn:
        c = r["connections"]
        reasons = fmt.reasons(c.get("failures", {})) or "no reason recorded"
        parts.append(f"{label} {r['parameters']['clients']} clients: {c['failed']} of {c['requested']} ({reasons})")
    return (
        f"**Failed connections** in {fmt.plural(len(conn), 'run')}: {'; '.join(parts)}. These clients never joined, so "
        "those runs measured fewer clients than their label says."
    )


def _incomplete(all_runs: Labelled) -> str | None:
    incomplete = [(label, r) for label, r in all_runs if not r.get("completed", True) or r["messages"].get("unsent")]
    if not incomplete:
        return None
    parts = []
    for label, r in incomplete:
        d, m = r["deliveries"], r["messages"]
        what = f"{d['expected'] - d['delivered']:,} of {d['expected']:,} deliveries missing"
        if m.get("unsent"):
            what += f", {m['unsent']:,} messages never sent"
        parts.append(f"{label} {r['parameters']['clients']} clients: {what}")
    drain = {r["parameters"].get("drain_timeout_s") for _, r in incomplete}
    drain_text = "/".join(f"{d:g}" for d in sorted(x for x in drain if x is not None)) or "?"
    return (
        f"**Incomplete runs**: {'; '.join(parts)}. The run stopped waiting {drain_text} s after the last "
        "message was due; whatever had not arrived by then counts as lost, and the latency of those "
        "deliveries is missing from the percentiles (which are therefore too optimistic)."
    )


def _disconnected(all_runs: Labelled) -> str | None:
    dropped = [(label, r) for label, r in all_runs if r["connections"].get("disconnected_during_run")]
    if not dropped:
        return None
    parts = [
        f"{label} {r['parameters']['clients']} clients: {r['connections'].get('disconnected_during_run')} "
        f"({', '.join(sorted(r['connections'].get('disconnect_reasons', {}))) or 'no reason'})"
        for label, r in dropped
    ]
    return f"**Clients disconnected by the server during the run**: {'; '.join(parts)}."


def _clamped(all_runs: Labelled) -> str | None:
    clamped = [(label, r["parameters"]["clients"]) for label, r in all_runs if r["latency_us"].get("clamped")]
    return f"**Latencies above 600 s were clamped** to 600 s in {_points(clamped)}." if clamped else None


def _server_exit(all_runs: Labelled) -> str | None:
    bad_exit = [
        (label, r["parameters"]["clients"])
        for label, r in all_runs
        if (r.get("target") or {}).get("exit_code") not in (None, 0)
    ]
    if not bad_exit:
        return None
    return f"**The server exited with an error** after {_points(bad_exit)} (see the run JSON's stderr_tail)."


def _pid_unchecked(all_runs: Labelled) -> str | None:
    unchecked = [
        (label, r["parameters"]["clients"]) for label, r in all_runs if (r.get("target") or {}).get("pid_check")
    ]
    if not unchecked:
        return None
    return (
        f"**The server's pid could not be checked** for {_points(unchecked)}: --server-pid may name another "
        "process than the one listening, and the server CPU and memory figures would then be that process's "
        "(see the run JSON's target.pid_check)."
    )


def warnings(series: Sequence[SeriesData]) -> list[str]:
    """Plain-words warnings for the top of the report (empty when all is well)."""
    all_runs: Labelled = [(s.label, r) for s in series for r in s.runs]
    total = len(all_runs) + sum(len(s.failed) for s in series)
    found = [
        _failed_points(series, total),
        _saturated(all_runs, total),
        _integrity(all_runs),
        _failed_connections(all_runs),
        _incomplete(all_runs),
        _disconnected(all_runs),
        _clamped(all_runs),
        _server_exit(all_runs),
        _pid_unchecked(all_runs),
    ]
    return [w for w in found if w is not None]
