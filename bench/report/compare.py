"""The comparison's report, from the sweeps saved under its directory:
``compare.json`` (per target and client count, and the ratios ours / each
peer), ``COMPARE.md`` (settings, ratio tables, every point) and the charts
(drawn by :mod:`bench.report.plots`).  ``python -m bench compare`` runs the
sweeps and calls :func:`write_report`; ``python -m bench report DIR``
redraws from them."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.report import plots, repeats, roomcharts, rooms, runline, timeline
from bench.report.fmt import ms, num, pct, plural, ratio_pct
from bench.results import schema
from bench.results.schema import (
    COMPARE_JSON,
    COMPARE_MD,
    CompareMeta,
    ComparePoint,
    CompareRatio,
    CompareSeries,
    CompareSummary,
    IndexEntry,
    RunDocument,
)
from bench.results.store import load_compare, load_index, load_run, write_json
from bench.results.summary import summarize_into
from bench.swarm.pinning import format_cpus

#: The target that is "ours" in the ratios when it is among the targets.
OURS = "embedded"


# ---------------------------------------------------------------------------
# compare.json: the sweeps summarized
# ---------------------------------------------------------------------------


def _point(run: IndexEntry, doc: RunDocument | None) -> ComparePoint:
    if run.get("status") != "ok" or doc is None:
        return {"clients": run["clients"], "status": "error", "error": run.get("error")}
    point: ComparePoint = {"clients": run["clients"], "status": "ok"}
    summarize_into(point, doc)
    return point


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def summarize(out: Path, targets: Sequence[str]) -> CompareSummary:
    """Read each target's sweep under ``out`` and compute the ratios."""
    series: dict[str, CompareSeries] = {}
    for name in targets:
        index = load_index(out / dirname(name) / schema.INDEX_NAME)
        points = []
        first: RunDocument | None = None
        for run in index["runs"]:
            file = run.get("file")
            doc = load_run(out / dirname(name) / file) if file else None
            if doc is not None and first is None:
                first = doc
            points.append(_point(run, doc))
        series[name] = {"target": _target_summary(first), "points": repeats.merge_repeats(points)}
    ours = OURS if OURS in series else targets[0]
    ratios: dict[str, list[CompareRatio]] = {}
    by_clients = {p["clients"]: p for p in series[ours]["points"]}
    for name in targets:
        if name == ours:
            continue
        rows: list[CompareRatio] = []
        for peer in series[name]["points"]:
            mine = by_clients.get(peer["clients"])
            if mine is None:
                continue
            ok = mine["status"] == "ok" and peer["status"] == "ok"
            row: CompareRatio = {
                "clients": peer["clients"],
                # fractions, not deliveries/s: each target's expected count is its own (module docstring)
                "delivered": _ratio(mine.get("delivered_ratio"), peer.get("delivered_ratio")) if ok else None,
                "p99": _ratio(mine.get("p99_us"), peer.get("p99_us")) if ok else None,
            }
            if ok and ("spread" in mine or "spread" in peer):  # --repeat N
                row["delivered_spread"] = repeats.ratio_spread(mine, peer, "delivered_ratio")
                row["p99_spread"] = repeats.ratio_spread(mine, peer, "p99_us")
            rows.append(row)
        ratios[name] = rows
    return {"ours": ours, "series": series, "ratios": ratios}


#: Our server's name in the version column and the charts' legends.
OUR_NAME = "chatbench"
#: Characters of the git commit that name our build ("chatbench 87d2086").
SHORT_SHA = 7


def _target_summary(first: RunDocument | None) -> dict[str, Any]:
    if first is None:
        return {}
    described: dict[str, object] = dict(first["target"])
    keys = ("kind", "protocol", "version", "flood_control", "command", "server_options", "config")
    summary: dict[str, Any] = {k: described[k] for k in keys if k in described}
    if described.get("kind") == OURS and not summary.get("version"):
        commit = first["environment"].get("git_commit")
        dirty = "+changes" if first["environment"].get("git_dirty") else ""
        summary["version"] = f"{OUR_NAME} {commit[:SHORT_SHA]}{dirty}" if commit else OUR_NAME
    return summary


#: A version number in a server's ``--version`` text: ``26.1``, ``v2.9.10``, ``v=7.0.15``.
VERSION_NUMBER = re.compile(r"\bv?=?(\d+(?:\.\d+)+)")


def server_label(name: str, target: dict[str, Any]) -> str:
    """A target as the charts name it: its server's name and version number
    ('ngIRCd 26.1', 'Redis 7.0.15', 'nats-server 2.9.10', 'mosquitto 2.0.11',
    'chatbench 87d2086'), not the harness's target kind nor the whole
    ``--version`` text (Redis's names its sha, allocator and build)."""
    version = str(target.get("version") or "")
    if not version:
        return name
    if version.startswith(OUR_NAME):
        return version
    number = VERSION_NUMBER.search(version)
    server = version.split()[0].rstrip(":")
    return f"{server} {number[1]}" if number else server


def dirname(target: str) -> str:
    return target.replace(":", "_").replace("[", "").replace("]", "")


def write_report(out: Path, meta: CompareMeta | None = None) -> Path:
    """Summarize the sweeps under ``out`` into compare.json, COMPARE.md and
    charts; ``meta`` None re-uses the one in an existing compare.json."""
    if meta is None:
        previous = load_compare(out)
        meta = previous["meta"]
        meta.setdefault("targets", list(previous["series"]))
    summary = summarize(out, meta["targets"])
    series = summary["series"]
    charts = plots.compare_charts(
        {name: s["points"] for name, s in series.items()},
        out,
        {name: server_label(name, s["target"]) for name, s in series.items()},
        ours=OURS,
    )
    runs = [(name, doc) for name in meta["targets"] for doc in _runs(out / dirname(name))]
    room_charts = {name: path.name for name, path in roomcharts.draw(runs, out).items()}
    write_json(out / COMPARE_JSON, {"kind": schema.COMPARE_KIND, "meta": meta, **summary})
    path = out / COMPARE_MD
    text = markdown(summary, meta, charts, over_time(out, meta["targets"]))
    path.write_text(text + "\n".join(rooms.markdown(runs, room_charts)), encoding="utf-8")
    return path


def _runs(directory: Path) -> list[RunDocument]:
    """A target's run documents, in its index's order."""
    index = load_index(directory / schema.INDEX_NAME)
    files = [run.get("file") for run in index["runs"]]
    return [load_run(directory / file) for file in files if file]


def over_time(out: Path, targets: Sequence[str]) -> list[str]:
    """Each run's chart over time drawn beside its JSON (:mod:`bench.report.timeline`),
    and one line of links per target (none for runs from before the time axis)."""
    lines = []
    for name in targets:
        index = load_index(out / dirname(name) / schema.INDEX_NAME)
        files = [f"{dirname(name)}/{run['file']}" for run in index["runs"] if run.get("file")]
        runs = [(name, load_run(out / file), file) for file in files]
        charts = timeline.draw_runs([(f"{t}, {d['parameters']['clients']} clients", d, f) for t, d, f in runs], out)
        links = [f"[{doc['parameters']['clients']}]({charts[file]})" for _, doc, file in runs if file in charts]
        if links:
            lines.append(f"- {name}, clients: {', '.join(links)}")
    if not lines:
        return []
    return ["", "## Over time", "", timeline.LINKS_NOTE, "", *lines]


# ---------------------------------------------------------------------------
# COMPARE.md
# ---------------------------------------------------------------------------


def _pct(v: float | None) -> str:
    return pct(v, unit="%")


def _mark(p: ComparePoint, *, share_shown: bool = False) -> str:
    """What to know about a point: (error), a share not delivered (unless the
    cell shows the share already), faults, failed connections, saturation."""
    flags = []
    if p["status"] != "ok":
        return " (error)"
    ratio = p.get("delivered_ratio")
    if ratio is not None and ratio < 1 and not share_shown:
        flags.append(f"{ratio_pct(ratio, 1)} of the {runline.MEASURED} delivered")
    if p.get("faults"):
        flags.append(f"{plural(p.get('faults', 0), 'fault')} ({runline.ALL_TRAFFIC})")
    if p.get("failed_connections"):
        flags.append(f"{p.get('failed_connections')} failed conns")
    if p.get("load_generator_saturated"):
        flags.append("harness saturated")
    if p.get("failed_runs"):
        flags.append(f"{p.get('failed_runs')} of {p.get('runs', 0) + p.get('failed_runs', 0)} runs failed")
    return f" ({', '.join(flags)})" if flags else ""


def markdown(summary: CompareSummary, meta: CompareMeta, charts: list[str], over: Sequence[str] = ()) -> str:
    """COMPARE.md: settings, the ratio tables ours/peer, every point, the charts,
    the links to every run's chart over time (``over``)."""
    lines = [
        "# chatbench: our server next to other chat servers",
        "",
        *_settings(summary, meta),
        *_ratio_tables(summary),
        *_all_points(summary),
    ]
    if charts:
        lines += ["", "## Charts", ""]
        lines += [f"![{c}]({c})" for c in charts]
    elif len({p["clients"] for s in summary["series"].values() for p in s["points"]}) == 1:
        lines += ["", "One client count: the tables above hold every number (a chart of one point would be empty)."]
    lines += over
    lines += [
        "",
        "Per-run JSON documents (schema: docs/results.md) are in one folder per target.",
        "",
    ]
    return "\n".join(lines)


def _settings(summary: CompareSummary, meta: CompareMeta) -> list[str]:
    series = summary["series"]
    lines = [
        f"Created {meta['created_at']} with `{' '.join(meta['command'])}`.",
        "",
        "## Settings",
        "",
        f"- Workload (same for every target): clients {', '.join(str(c) for c in meta['clients'])}; "
        f"{meta['parameters']['senders']} senders among them; {meta['parameters']['rate']:g} messages/s in total; "
        f"{meta['parameters']['payload_bytes']}-byte payload; {meta['parameters']['warmup_s']:g} s warm-up, "
        f"{meta['parameters']['duration_s']:g} s measured; {_workload(meta)}{_order(meta)}",
        *_pinning(meta),
        f"- Receivers ACK every read at once (TCP_QUICKACK): {_quickack(meta)}. "
        "ngircd and miniircd leave Nagle on (no TCP_NODELAY), so without quick ACKs their lines wait up to "
        "~40 ms for the client's delayed ACK; ours sets TCP_NODELAY.",
        f"- Flood control: ours runs with `--rate-limit 0`; {meta['flood_plan']}; miniircd has none.",
        f"- Machine: {meta['environment'].get('cpu_model')}, {meta['environment'].get('cpu_count')} CPUs, "
        "harness and server on the same machine (loopback).",
        "",
        "| target | protocol | version | flood control |",
        "| --- | --- | --- | --- |",
    ]
    for name, s in series.items():
        t = s["target"]
        lines.append(
            f"| {name} | {t.get('protocol', '-')} | {t.get('version') or 'this repo'} | "
            f"{t.get('flood_control') or ('--rate-limit 0' if name == OURS else '-')} |"
        )
    points = [p for s in series.values() for p in s["points"]]
    saturated = sum(1 for p in points if p.get("load_generator_saturated"))
    load = meta["environment"].get("load_average")
    lines += [
        "",
        f"Machine load average when the comparison ended: {', '.join(f'{v:.2f}' for v in load) if load else '-'}.",
    ]
    if saturated:
        lines += [
            "",
            f"**Caveat:** {saturated} of {plural(len(points), 'point')} {'is' if saturated == 1 else 'are'} flagged "
            "*harness saturated*: a load-generator "
            "worker was running or waiting for a CPU for >= 90% of the traffic window (busy, or starved by other "
            "load on the machine). Their latencies describe the harness as much as the server; read them as upper "
            "bounds and compare them only with care.",
        ]
    return lines


def _workload(meta: CompareMeta) -> str:
    """A workload of rooms, in the settings' sentence (the Rooms section has the rest)."""
    w = meta["parameters"].get("workload")
    if w is None:
        return ""
    name = f"scenario {w['scenario']}: " if w["scenario"] else ""
    return f"rooms: {name}{w['summary']} (seed {w['seed']}, {w['total_rate']:g} msg/s in total); "


def _quickack(meta: CompareMeta) -> str:
    quick = meta.get("quickack_targets")
    if quick is None:
        return "yes" if meta["quickack"] else "no"
    if set(quick) in (set(meta["targets"]), set()):
        return "yes" if quick else "no"
    return f"for {', '.join(quick)} only (the others: delayed ACKs)"


def _order(meta: CompareMeta) -> str:
    if "repeat" not in meta:  # written before --repeat: the targets ran one after another
        return "a fresh server per point; targets one after another."
    repeat = meta["repeat"]
    if repeat <= 1:
        return "a fresh server per point; the targets take turns at each client count."
    return (
        f"a fresh server per run; each point run {repeat} times, interleaved (every target once, then again), "
        "so drift hits all "
        "alike; a value is the median of the runs with (min-max) beside it; a ratio is the ratio of medians "
        "with the lowest and highest ratio of any two runs, and is marked ≈1 when that spread crosses 1.0 "
        "(it does not count)."
    )


def _pinning(meta: CompareMeta) -> list[str]:
    server, harness = meta.get("server_cpus"), meta.get("harness_cpus")
    if not server and not harness:
        return []
    return [
        f"- Pinned apart: server on CPUs {format_cpus(server or [])}, harness on CPUs {format_cpus(harness or [])}."
    ]


def _delivered(p: ComparePoint) -> str:
    """``100% (900/s)``: the share of the expected deliveries, and the rate."""
    return f"{ratio_pct(p.get('delivered_ratio'), 1)} ({num(p.get('deliveries_per_s'))}/s)"


def _ratio_tables(summary: CompareSummary) -> list[str]:
    ours = summary["ours"]
    series = summary["series"]
    lines = [
        "",
        "## Ratios (ours / peer)",
        "",
        "delivered: the share of its expected deliveries each target made, with its deliveries/s beside it; "
        "the ratio compares the shares, not the counts, because the targets differ in who hears whom (a Redis "
        "publisher is a connection of its own, so every subscriber, the sender's too, gets the message; our "
        "server and the others skip the sender): above 1 = ours delivered a larger share, 1 = the same. "
        "p99: below 1 = ours was faster. CPU is each server's average over the traffic window (100% = one core).",
        "",
    ]
    ours_points = {p["clients"]: p for p in series[ours]["points"]}
    for peer, rows in summary["ratios"].items():
        peer_points = {p["clients"]: p for p in series[peer]["points"]}
        lines += [
            f"### {ours} vs {peer}",
            "",
            f"| clients | delivered {ours} | delivered {peer} | ratio | p99 ms {ours} | p99 ms {peer} | ratio "
            f"| CPU {ours} | CPU {peer} |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in rows:
            a, b = ours_points[row["clients"]], peer_points[row["clients"]]
            lines.append(
                f"| {row['clients']} | {_delivered(a)}{_mark(a, share_shown=True)} | "
                f"{_delivered(b)}{_mark(b, share_shown=True)} | "
                f"{repeats.ratio_text(row['delivered'], row.get('delivered_spread'))} | "
                f"{repeats.with_spread(a, 'p99_us', ms)} | {repeats.with_spread(b, 'p99_us', ms)} | "
                f"{repeats.ratio_text(row['p99'], row.get('p99_spread'))} | "
                f"{_pct(a.get('server_cpu_percent'))} | {_pct(b.get('server_cpu_percent'))} |"
            )
        lines.append("")
    return lines


def _all_points(summary: CompareSummary) -> list[str]:
    series = summary["series"]
    lines = ["## All points", "", "| target | clients | deliveries/s | p50 ms | p99 ms | server CPU | harness CPU |"]
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, s in series.items():
        for p in s["points"]:
            lines.append(
                f"| {name} | {p['clients']} | {num(p.get('deliveries_per_s'))}{_mark(p)} | "
                f"{repeats.with_spread(p, 'p50_us', ms)} | {repeats.with_spread(p, 'p99_us', ms)} | "
                f"{repeats.with_spread(p, 'server_cpu_percent', _pct)} | "
                f"{_pct(p.get('harness_cpu_percent'))} |"
            )
    return lines
