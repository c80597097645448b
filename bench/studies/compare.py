"""Our server next to other chat servers: the same sweep against each target,
in one run, and a comparison.

``python -m bench.studies.compare --help`` for the command line (``make compare``).
For each target the sweep (:func:`bench.swarm.run_sweep`: one run per client
count, a fresh server each) goes to ``OUT/<target>/`` (run JSONs and
``index.json``, the usual results schema).  Then:

``OUT/compare.json``  per target and client count: deliveries/s, p50/p99,
                      delivered ratio, faults, server and harness CPU; and the
                      ratios ours / each peer.
``OUT/COMPARE.md``    the settings (protocol, flood control, TCP_QUICKACK), the
                      ratio table per peer, and the charts.
``OUT/*.png``         one line per target: p99 latency, deliveries/s and
                      server CPU against the client count.

Ratios are *ours / peer*: for deliveries/s above 1 means ours delivered
more; for p99 below 1 means ours was faster.  Our server is the ``embedded``
target (the first of ``--targets`` when ``embedded`` is not among them).

Fairness: every target gets the same workload (clients, senders, rate,
payload, warm-up) from the same harness; the peers speak IRC through
:mod:`bench.wire.adapters`, ours its own line protocol.  ngircd runs with
``MaxPenaltyTime = 0`` when the installed version has it; otherwise the rate is
spread over enough senders that none exceeds ngircd's penalty rate, for
*every* target, and the report says so.  By default receivers ACK every read
at once (``--quickack``): ngircd and miniircd do not set TCP_NODELAY, so with
delayed ACKs Nagle holds their next line for up to ~40 ms -- what many real
clients would see, but a property of the socket options, not of fan-out;
``--no-quickack`` measures that instead.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import results
from bench.results.machine import environment
from bench.swarm import DEFAULT_SENDERS, SwarmConfig
from bench.swarm.cli import _client_list, default_out_dir, run_sweep
from bench.targets import (
    NGIRCD_PENALTY_RATE_PER_SENDER,
    TARGET_KINDS,
    NgircdTarget,
    TargetError,
    make_target,
)

DEFAULT_TARGETS = ("embedded", "ngircd", "miniircd")
DEFAULT_CLIENTS = (10, 50, 100, 250, 500)
OURS = "embedded"
COMPARE_KIND = "chatbench.compare"


class CompareError(Exception):
    """The comparison cannot be run; the message says why."""


def _target_list(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of targets")
    unknown = [t for t in names if t not in TARGET_KINDS and ":" not in t]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown target(s) {', '.join(unknown)}; choose from {', '.join(TARGET_KINDS)} or HOST:PORT"
        )
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError("a target is listed twice")
    return names


def flood_plan(targets: Sequence[str], rate: float, senders: int | None) -> tuple[int | None, str]:
    """The senders to use and a sentence on flood control: ngircd without
    ``MaxPenaltyTime`` needs the rate spread over many senders."""
    notes = []
    for name in targets:
        if name != "ngircd":
            continue
        target = make_target(name)
        assert isinstance(target, NgircdTarget)
        if target.max_rate_per_sender is None:
            notes.append(f"ngircd: {target.flood_control}")
            continue
        need = math.ceil(rate / target.max_rate_per_sender) if rate > 0 else DEFAULT_SENDERS
        spread = max(senders or DEFAULT_SENDERS, need)
        notes.append(
            f"ngircd has no MaxPenaltyTime: the rate is spread over {spread} senders "
            f"(<= {NGIRCD_PENALTY_RATE_PER_SENDER:g} msg/s each) for every target; "
            "client counts below that have fewer senders, each faster"
        )
        return spread, "; ".join(notes)
    return senders, "; ".join(notes) or "no ngircd among the targets"


def _point(run: dict[str, Any], doc: dict[str, Any] | None) -> dict[str, Any]:
    if run.get("status") != "ok" or doc is None:
        return {"clients": run["clients"], "status": "error", "error": run.get("error")}
    lat = doc["latency_us"]
    server = (doc["resources"].get("server") or {}).get("summary") or {}
    return {
        "clients": run["clients"],
        "status": "ok",
        "deliveries_per_s": doc["deliveries"]["per_s"],
        "delivered_ratio": doc["deliveries"]["delivered_ratio"],
        "p50_us": lat["p50_us"],
        "p99_us": lat["p99_us"],
        "max_us": lat["max_us"],
        "faults": doc["integrity"]["faults"],
        "failed_connections": doc["connections"]["failed"],
        "server_cpu_percent": server.get("cpu_percent_window"),
        "server_rss_max_bytes": server.get("rss_max_bytes"),
        "harness_cpu_percent": doc["resources"].get("harness_cpu_percent_window"),
        "load_generator_saturated": doc["load_generator_saturated"],
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def summarize(out: Path, targets: Sequence[str]) -> dict[str, Any]:
    """Read each target's sweep under ``out`` and compute the ratios."""
    series: dict[str, dict[str, Any]] = {}
    for name in targets:
        index = results.load_index(out / _dirname(name) / results.INDEX_NAME)
        points = []
        described: dict[str, Any] | None = None
        for run in index["runs"]:
            doc = results.load_run(out / _dirname(name) / run["file"]) if run.get("file") else None
            if doc is not None and described is None:
                described = doc["target"]
            points.append(_point(run, doc))
        series[name] = {"target": _target_summary(described), "points": points}
    ours = OURS if OURS in series else targets[0]
    ratios: dict[str, list[dict[str, Any]]] = {}
    by_clients = {p["clients"]: p for p in series[ours]["points"]}
    for name in targets:
        if name == ours:
            continue
        rows = []
        for peer in series[name]["points"]:
            mine = by_clients.get(peer["clients"])
            if mine is None:
                continue
            ok = mine["status"] == "ok" and peer["status"] == "ok"
            rows.append(
                {
                    "clients": peer["clients"],
                    "deliveries_per_s": _ratio(mine.get("deliveries_per_s"), peer.get("deliveries_per_s"))
                    if ok
                    else None,
                    "p99": _ratio(mine.get("p99_us"), peer.get("p99_us")) if ok else None,
                }
            )
        ratios[name] = rows
    return {"ours": ours, "series": series, "ratios": ratios}


def _target_summary(described: dict[str, Any] | None) -> dict[str, Any]:
    if described is None:
        return {}
    keys = ("kind", "protocol", "version", "flood_control", "command", "server_options", "config")
    return {k: described[k] for k in keys if k in described}


def _dirname(target: str) -> str:
    return target.replace(":", "_").replace("[", "").replace("]", "")


# ---------------------------------------------------------------------------
# markdown
# ---------------------------------------------------------------------------


def _ms(us: float | None) -> str:
    return "-" if us is None else f"{us / 1000:.2f}"


def _num(v: float | None, fmt: str = "{:,.0f}") -> str:
    return "-" if v is None else fmt.format(v)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}%"


def _mark(p: dict[str, Any]) -> str:
    flags = []
    if p["status"] != "ok":
        return " (error)"
    if p["delivered_ratio"] is not None and p["delivered_ratio"] < 1:
        flags.append(f"{100 * p['delivered_ratio']:.1f}% delivered")
    if p["faults"]:
        flags.append(f"{p['faults']} faults")
    if p["failed_connections"]:
        flags.append(f"{p['failed_connections']} failed conns")
    if p["load_generator_saturated"]:
        flags.append("harness saturated")
    return f" ({', '.join(flags)})" if flags else ""


def markdown(summary: dict[str, Any], meta: dict[str, Any], charts: list[str]) -> str:
    ours = summary["ours"]
    series = summary["series"]
    lines = [
        "# chatbench: our server next to other chat servers",
        "",
        f"Created {meta['created_at']} with `{' '.join(meta['command'])}`.",
        "",
        "## Settings",
        "",
        f"- Workload (same for every target): clients {', '.join(str(c) for c in meta['clients'])}; "
        f"{meta['parameters']['senders']} senders among them; {meta['parameters']['rate']:g} messages/s in total; "
        f"{meta['parameters']['payload_bytes']}-byte payload; {meta['parameters']['warmup_s']:g} s warm-up, "
        f"{meta['parameters']['duration_s']:g} s measured; a fresh server per point; targets one after another.",
        f"- Receivers ACK every read at once (TCP_QUICKACK): {'yes' if meta['quickack'] else 'no'}. "
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
            f"**Caveat:** {saturated} of {len(points)} points are flagged *harness saturated*: a load-generator "
            "worker was running or waiting for a CPU for >= 90% of the traffic window (busy, or starved by other "
            "load on the machine). Their latencies describe the harness as much as the server; read them as upper "
            "bounds and compare them only with care.",
        ]
    lines += [
        "",
        "## Ratios (ours / peer)",
        "",
        "deliveries/s: above 1 = ours delivered more. p99: below 1 = ours was faster. "
        "CPU is each server's average over the traffic window (100% = one core).",
        "",
    ]
    ours_points = {p["clients"]: p for p in series[ours]["points"]}
    for peer, rows in summary["ratios"].items():
        peer_points = {p["clients"]: p for p in series[peer]["points"]}
        lines += [
            f"### {ours} vs {peer}",
            "",
            f"| clients | deliveries/s {ours} | deliveries/s {peer} | ratio | p99 ms {ours} | p99 ms {peer} | ratio "
            f"| CPU {ours} | CPU {peer} |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in rows:
            a, b = ours_points[row["clients"]], peer_points[row["clients"]]
            lines.append(
                f"| {row['clients']} | {_num(a.get('deliveries_per_s'))}{_mark(a)} | "
                f"{_num(b.get('deliveries_per_s'))}{_mark(b)} | {_num(row['deliveries_per_s'], '{:.2f}')} | "
                f"{_ms(a.get('p99_us'))} | {_ms(b.get('p99_us'))} | {_num(row['p99'], '{:.2f}')} | "
                f"{_pct(a.get('server_cpu_percent'))} | {_pct(b.get('server_cpu_percent'))} |"
            )
        lines.append("")
    lines += ["## All points", "", "| target | clients | deliveries/s | p50 ms | p99 ms | server CPU | harness CPU |"]
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, s in series.items():
        for p in s["points"]:
            lines.append(
                f"| {name} | {p['clients']} | {_num(p.get('deliveries_per_s'))}{_mark(p)} | {_ms(p.get('p50_us'))} | "
                f"{_ms(p.get('p99_us'))} | {_pct(p.get('server_cpu_percent'))} | "
                f"{_pct(p.get('harness_cpu_percent'))} |"
            )
    if charts:
        lines += ["", "## Charts", ""]
        lines += [f"![{c}]({c})" for c in charts]
    lines += [
        "",
        "Per-run JSON documents (schema: docs/results.md) are in one folder per target.",
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# charts -- kept apart so they can move to the report's plotting module later
# ---------------------------------------------------------------------------


def write_charts(summary: dict[str, Any], out: Path) -> list[str]:
    """One PNG per metric, one line per target; returns the file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    metrics = [
        ("compare-p99.png", "p99_us", "p99 latency (ms)", 1e-3, True),
        ("compare-deliveries.png", "deliveries_per_s", "deliveries/s", 1.0, True),
        ("compare-server-cpu.png", "server_cpu_percent", "server CPU (% of one core)", 1.0, False),
    ]
    files = []
    for file, key, label, scale, logy in metrics:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for name, s in summary["series"].items():
            pts = [(p["clients"], p[key] * scale) for p in s["points"] if p["status"] == "ok" and p.get(key)]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, marker="o", label=name)
        ax.set_xscale("log")
        ax.set_xticks(sorted({p["clients"] for s in summary["series"].values() for p in s["points"]}))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: f"{v:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        if logy:
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: f"{v:,.10g}"))
            ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set_xlabel("clients")
        ax.set_ylabel(label)
        ax.set_title(f"{label} vs clients")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / file, dpi=90)
        plt.close(fig)
        files.append(file)
    return files


# ---------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    d = SwarmConfig()
    p = argparse.ArgumentParser(
        prog="python -m bench.studies.compare",
        description=(
            "Run the same fan-out sweep against several chat servers (ours and IRC peers) and write a "
            "comparison: per-target run JSONs, compare.json, COMPARE.md with ratios ours/peer, and charts."
        ),
        epilog=(
            "Peers: `make peers` installs ngircd (apt) and miniircd (pip). miniircd's select() loop cannot go "
            "past ~1,020 connections. "
            "Example: `python -m bench.studies.compare --clients 10,50,100 --rate 100 --duration 3`."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--targets",
        type=_target_list,
        default=list(DEFAULT_TARGETS),
        help="comma-separated targets; 'embedded' is ours, the ratios are against it",
    )
    p.add_argument(
        "--clients",
        type=_client_list,
        default=list(DEFAULT_CLIENTS),
        help="receiving clients per point (comma-separated)",
    )
    p.add_argument("--senders", type=int, help=f"sending clients (default min(clients, {DEFAULT_SENDERS}))")
    p.add_argument("--rate", type=float, default=100.0, help="total messages/s over all senders")
    p.add_argument("--duration", type=float, default=d.duration_s, help="measured seconds per point")
    p.add_argument("--warmup", type=float, default=d.warmup_s, help="unmeasured seconds first")
    p.add_argument("--payload", type=int, default=d.payload_bytes, help="payload bytes per message")
    p.add_argument("--drain-timeout", type=float, default=d.drain_timeout_s, help="seconds to wait for stragglers")
    p.add_argument(
        "--quickack",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="receivers ACK every read at once (TCP_QUICKACK), so servers without TCP_NODELAY are not held "
        "up by delayed ACKs",
    )
    p.add_argument("--out", help="output directory (default: reports/compare/<timestamp>)")
    p.add_argument(
        "--rebuild",
        metavar="DIR",
        help="run nothing: re-read the sweeps in DIR (a previous --out); rewrite compare.json, COMPARE.md, charts",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.rebuild:
        try:
            path = write_report(Path(args.rebuild))
        except (results.ResultsError, OSError, KeyError) as exc:
            parser.error(f"cannot rebuild {args.rebuild}: {exc}")
        print(f"comparison: {path}", file=sys.stderr)
        return 0
    targets: list[str] = args.targets
    if args.rate <= 0:
        parser.error("--rate must be positive")
    try:
        for name in targets:
            make_target(name)  # installed?  (clear error otherwise)
        senders, flood = flood_plan(targets, args.rate, args.senders)
        base = SwarmConfig(
            clients=max(args.clients),
            senders=senders,
            rate=args.rate,
            duration_s=args.duration,
            warmup_s=args.warmup,
            payload_bytes=args.payload,
            drain_timeout_s=args.drain_timeout,
            quickack=args.quickack,
            progress=not args.quiet,
        )
        for name in targets:
            replace(base, target=name)  # validates the payload against each protocol
    except (TargetError, ValueError) as exc:
        parser.error(str(exc))
    out = Path(args.out) if args.out else default_out_dir("reports/compare")
    command = ["python", "-m", "bench.studies.compare", *(sys.argv[1:] if argv is None else argv)]
    failed = False
    for name in targets:
        print(f"== {name} ==", flush=True)
        index = run_sweep(
            replace(base, target=name, label=f"compare:{name}"),
            args.clients,
            out / _dirname(name),
            echo=sys.stdout,
            command=[*command, f"# target {name}"],
        )
        failed |= any(r["status"] != "ok" for r in index["runs"])
    meta = {
        "targets": targets,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command,
        "clients": list(args.clients),
        "parameters": {
            "senders": base.sender_count if args.senders or senders else f"min(clients, {DEFAULT_SENDERS})",
            "rate": args.rate,
            "payload_bytes": args.payload,
            "warmup_s": args.warmup,
            "duration_s": args.duration,
        },
        "quickack": args.quickack,
        "flood_plan": flood,
        "environment": environment(),
    }
    print(f"comparison: {write_report(out, meta)}", file=sys.stderr)
    return 1 if failed else 0


def write_report(out: Path, meta: dict[str, Any] | None = None) -> Path:
    """Summarize the sweeps under ``out`` into compare.json, COMPARE.md and
    charts; ``meta`` None re-uses the one in an existing compare.json."""
    if meta is None:
        try:
            previous = json.loads((out / "compare.json").read_text(encoding="utf-8"))
            meta = dict(previous["meta"])
            meta.setdefault("targets", list(previous["series"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise results.ResultsError(f"no readable compare.json in {out}: {exc}") from exc
    summary = summarize(out, meta["targets"])
    charts = write_charts(summary, out)
    results.write_json(out / "compare.json", {"kind": COMPARE_KIND, "meta": meta, **summary})
    path = out / "COMPARE.md"
    path.write_text(markdown(summary, meta, charts), encoding="utf-8")
    return path


if __name__ == "__main__":
    sys.exit(main())
