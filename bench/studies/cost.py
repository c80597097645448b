"""``python -m bench cost``: what one delivery costs the server, in CPU time and
context switches -- figures that survive a busy machine, where wall-clock
latency does not.

For each target (ours, ngircd, miniircd, ...) and repeat, interleaved
(A B C A B C): start the server, pin it to ``--server-cpus`` (every thread),
and run one swarm point against it with the harness on ``--harness-cpus``.
Reported per run, from the run document:

``cpu_us_per_delivery``  the server's CPU time over the traffic window (the run
                         document's ``cpu_seconds_window``: its CPU clock, to the
                         nanosecond) per second / deliveries per second
``switches_per_delivery``  context switches into the server's threads over the
                         traffic window (the sampler's ``switches_window``, from
                         ``/proc/PID/task/*/schedstat`` at the window's edges)
                         per second / deliveries per second: a thread woken to
                         read a line or to send counts once, so this is the
                         wake-ups a delivery costs
``p99_us``, ``delivered_ratio``

The server's threads are read only at the window's edges, not during the
traffic: with the harness pinned, reading 1,000 threads' files every half
second took its CPU for milliseconds each time, and sends due meanwhile went
out late (a p99 of the harness's send lag of 4-5 ms against our server,
0.3 ms without).  Medians over the repeats with (min-max) are printed and written to
``OUT/cost.json`` with every run's figures; each run's document goes to
``OUT/<target>/``.  Loopback only, Linux only (``/proc``).

``--tls``: what encryption costs each server.  Every target runs twice per
repeat, plaintext then TLS, back to back (A-plain A-tls B-plain B-tls, ...),
each on a fresh server the harness starts with TLS (its certificate
generated); ``tls_ratio`` is, per target, TLS ÷ plaintext CPU µs per
delivery: the median over the repeats of each repeat's adjacent pair, with
the (min-max) of those ratios, so a drift of the machine cancels out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
from collections.abc import Mapping
from dataclasses import replace
from typing import TypedDict, cast

from bench import cli
from bench.progname import PROG
from bench.results import schema
from bench.results.store import SeriesWriter, write_json
from bench.studies import sweep
from bench.swarm import SwarmConfig, SwarmError, run_swarm
from bench.swarm.pinning import PinningError, pin_process
from bench.swarm.run import client_tls
from bench.targets import TargetError, make_target

DEFAULT_TARGETS = ("embedded", "ngircd", "miniircd")
DEFAULT_ROOT = "reports/cost"


class CostRun(TypedDict):
    target: str
    transport: str  #: plain or tls
    repeat: int
    clients: int
    rate: float
    status: str  #: "ok" or the error
    deliveries_per_s: float | None
    delivered_ratio: float | None
    p99_us: int | None
    server_cpu_percent: float | None
    cpu_us_per_delivery: float | None
    switches_per_s: float | None
    switches_per_delivery: float | None


class CostDocument(TypedDict):
    kind: str
    created_at: str
    command: list[str]
    server_cpus: list[int] | None
    harness_cpus: list[int] | None
    runs: list[CostRun]
    #: series (the target, ``:tls`` with --tls) -> figure -> [median, min, max]
    medians: dict[str, dict[str, list[float | None]]]
    #: --tls: target -> TLS ÷ plaintext of cpu_us_per_delivery, [median, min, max] over the repeats' pairs
    tls_ratio: dict[str, list[float | None]]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "CPU time and context switches per delivery of each server (ours, ngircd, miniircd), pinned apart from the "
        "harness, interleaved and repeated: a measurement that holds on a busy machine."
    )
    parser.epilog = (
        f"Example (2 cores): `{PROG} cost --clients 100 --rate 200 --repeat 3 --server-cpus 1 "
        "--harness-cpus 0`. Writes OUT/cost.json and one folder of run documents per target."
    )
    g = parser.add_argument_group("cost")
    g.add_argument("--targets", type=cli.target_list, default=list(DEFAULT_TARGETS), help="comma-separated targets")
    g.add_argument("--clients", type=int, default=100, help="clients (one point)")
    g.add_argument("--repeat", type=int, default=3, help="runs per target, interleaved")
    cli.add_parents(parser, cli.security_options(), cli.clients_options(), cli.traffic_options(), cli.output_options())
    parser.set_defaults(reports_root=DEFAULT_ROOT, duration=8.0)


def empty_row(config: SwarmConfig, repeat: int, status: str) -> CostRun:
    return {
        "target": config.target,
        "transport": config.transport,
        "repeat": repeat,
        "clients": config.clients,
        "rate": config.rate,
        "status": status,
        "deliveries_per_s": None,
        "delivered_ratio": None,
        "p99_us": None,
        "server_cpu_percent": None,
        "cpu_us_per_delivery": None,
        "switches_per_s": None,
        "switches_per_delivery": None,
    }


def _per_s(count: float | None, seconds: float | None) -> float | None:
    return count / seconds if count is not None and seconds else None


def one_run(config: SwarmConfig, writer: SeriesWriter, repeat: int) -> CostRun:
    """Start the target, pin it, run the point against it."""
    target = make_target(config.target, security=config.security)
    row = empty_row(config, repeat, "ok")
    host, port = target.start()
    try:
        assert target.pid is not None
        if config.server_cpus:
            pin_process(target.pid, config.server_cpus)
        external = replace(
            config,
            target=f"{host}:{port}",
            protocol=target.protocol,
            tls=client_tls(config),
            server_pid=target.pid,
            server_cpus=None,
            connect_batch=config.connect_batch or target.connect_batch,
        )
        doc = run_swarm(external)
    finally:
        target.stop()
    writer.add(doc, repeat)
    per_s = doc["deliveries"]["per_s"]
    summary = schema.server_summary(doc)
    window_s = doc["resources"]["window_s"]
    cpu_s = _per_s(summary.get("cpu_seconds_window"), window_s)
    cpu = summary.get("cpu_percent_window")
    switches = _per_s(summary.get("switches_window"), window_s)
    row.update(
        {
            "deliveries_per_s": per_s,
            "delivered_ratio": doc["deliveries"]["delivered_ratio"],
            "p99_us": doc["latency_us"]["p99_us"],
            "server_cpu_percent": cpu,
            "cpu_us_per_delivery": round(cpu_s / per_s * 1e6, 3) if cpu_s is not None and per_s else None,
            "switches_per_s": round(switches, 1) if switches is not None else None,
            "switches_per_delivery": round(switches / per_s, 4) if switches is not None and per_s else None,
        }
    )
    return row


FIGURES = ("cpu_us_per_delivery", "switches_per_delivery", "p99_us", "server_cpu_percent", "deliveries_per_s")


def series_of(row: CostRun) -> str:
    """``redis`` or ``redis:tls``: what the medians are keyed by."""
    return row["target"] + (":tls" if row["transport"] == "tls" else "")


def medians(runs: list[CostRun], series: list[str]) -> dict[str, dict[str, list[float | None]]]:
    """series -> figure -> [median, min, max] over its runs that finished."""
    out: dict[str, dict[str, list[float | None]]] = {}
    for name in series:
        mine = [r for r in runs if series_of(r) == name and r["status"] == "ok"]
        out[name] = {}
        for key in FIGURES:
            values = [float(v) for r in mine if isinstance(v := cast(Mapping[str, object], r)[key], (int, float))]
            out[name][key] = [statistics.median(values), min(values), max(values)] if values else [None, None, None]
    return out


def tls_ratios(runs: list[CostRun], targets: list[str]) -> dict[str, list[float | None]]:
    """target -> TLS ÷ plaintext CPU µs per delivery: [median, min, max] over
    the repeats in which both of its adjacent runs finished."""
    out: dict[str, list[float | None]] = {}
    for name in targets:
        by_rep: dict[int, dict[str, float]] = {}
        for r in runs:
            value = r["cpu_us_per_delivery"]
            if r["target"] == name and r["status"] == "ok" and value:
                by_rep.setdefault(r["repeat"], {})[r["transport"]] = value
        ratios = [pair["tls"] / pair["plain"] for pair in by_rep.values() if {"tls", "plain"} <= pair.keys()]
        out[name] = (
            [round(statistics.median(ratios), 3), round(min(ratios), 3), round(max(ratios), 3)]
            if ratios
            else [None, None, None]
        )
    return out


def key_of(config: SwarmConfig) -> str:
    """``redis`` or ``redis:tls``: a series of runs."""
    return config.target + (":tls" if config.tls is not None else "")


def variants(base: SwarmConfig) -> list[SwarmConfig]:
    """Plaintext, then (with --tls) TLS: what each target runs per repeat."""
    if base.tls is None:
        return [base]
    return [replace(base, tls=None), base]


def run(args: argparse.Namespace) -> int:
    if args.repeat < 1:
        raise cli.UsageError("--repeat must be at least 1")
    targets: list[str] = args.targets
    if any(":" in t for t in targets):
        raise cli.UsageError("cost starts its targets itself: name them (embedded, ngircd, miniircd), not HOST:PORT")
    base = cli.swarm_config(args, args.clients)
    if base.logins is not None:
        raise cli.UsageError(
            "cost measures the traffic, which logins do not change: drop --user/--password/--credentials"
        )
    for name in targets:
        make_target(name, security=base.security)  # can it be so secured? (a clear error before any run)
    out = sweep.out_dir(args)
    series = {key_of(v): v for name in targets for v in variants(replace(base, target=name))}
    writers = {
        key: SeriesWriter(out / key.replace(":", "-"), v.parameters(), key, args.argv) for key, v in series.items()
    }
    runs: list[CostRun] = []
    for rep in range(1, args.repeat + 1):
        for key, variant in series.items():
            config = replace(variant, label=f"cost:{key}")
            try:
                row = one_run(config, writers[key], rep)
            except (SwarmError, TargetError, ValueError, OSError, PinningError) as exc:
                row = empty_row(config, rep, f"error: {exc}")
            runs.append(row)
            print(json.dumps(row), flush=True)
    doc: CostDocument = {
        "kind": "chatbench.cost",
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": list(args.argv),
        "server_cpus": list(base.server_cpus) if base.server_cpus else None,
        "harness_cpus": list(base.harness_cpus) if base.harness_cpus else None,
        "runs": runs,
        "medians": medians(runs, list(writers)),
        "tls_ratio": tls_ratios(runs, targets) if base.tls is not None else {},
    }
    write_json(out / "cost.json", doc)
    for name, figs in doc["medians"].items():
        text = "; ".join(f"{k} {_fmt(v)}" for k, v in figs.items())
        print(f"{name}: {text}")
    for name, ratio in doc["tls_ratio"].items():
        print(f"{name}: TLS / plaintext CPU us per delivery {_fmt(ratio)}")
    print(f"cost: {out / 'cost.json'}", file=sys.stderr)
    return 0 if all(r["status"] == "ok" for r in runs) else 1


def _fmt(v: list[float | None]) -> str:
    if v[0] is None:
        return "-"
    return f"{v[0]:.4g} ({v[1]:.4g}-{v[2]:.4g})"
