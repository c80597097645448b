"""``python -m bench cluster-scaling``: the cluster's scaling curve (``make bench-cluster``).

One run per node count N (target ``cluster:N``: redis-server and N server
processes, client i on node i mod N) at one client count; with ``--rate-per-node`` the
offered rate grows with N, so every node carries the load the single process
carried (weak scaling: the ideal is N times its deliveries/s).  Writes one
series directory per N (run JSON + index.json, as ``sweep`` does), then
``scaling.json`` (N -> deliveries/s, p99, faults), ``scaling.png`` (the curve
with the linear ideal) and ``scaling.md`` / ``scaling.html`` (with each run's
same-node and cross-node latencies).
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import TypedDict

from bench import cli
from bench.report import doc, plots, timeline
from bench.report.fmt import md_cell
from bench.report.labels import label_tables
from bench.results.schema import RunDocument
from bench.results.store import SeriesWriter, load_run, write_json
from bench.studies.sweep import Plan, Series, out_dir, run_series

#: Node counts of the default curve (the issue's 1, 2, 4, 8).
DEFAULT_NODES = (1, 2, 4, 8)
#: Clients of the default curve: small enough for a 2-core machine; the
#: 16-core measurement passes --clients 1000.
DEFAULT_CLIENTS = 200
#: Messages/s of the default curve (per node with --rate-per-node).
DEFAULT_RATE = 50.0


class ScalingPoint(TypedDict):
    nodes: int
    clients: int
    rate: float
    deliveries_per_s: float | None
    p99_us: int | None
    faults: int | None
    speedup: float | None  #: deliveries/s over the first point's
    error: str | None


class ScalingDocument(TypedDict):
    kind: str
    rate_per_node: bool
    points: list[ScalingPoint]


def node_counts(text: str) -> list[int]:
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated node counts, got {text!r}") from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError("node counts must be >= 1")
    return values


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run the same load against a cluster of 1, 2, 4, 8 nodes (target cluster:N: redis-server and N server "
        "processes over a Redis backplane, client i on node i mod N) and draw deliveries/s and p99 against N with the "
        "linear ideal. On a machine with fewer cores than nodes the curve is bounded by the cores."
    )
    cli.add_parents(parser, *cli.swarm_parents())
    parser.set_defaults(rate=DEFAULT_RATE)
    parser.add_argument("--nodes", type=node_counts, default=list(DEFAULT_NODES), metavar="N,N,...")
    parser.add_argument("--clients", type=int, default=DEFAULT_CLIENTS, help="clients, spread over the nodes")
    parser.add_argument(
        "--rate-per-node",
        action="store_true",
        help="offer --rate x N msg/s at N nodes (every node carries the single process's load)",
    )


def run(args: argparse.Namespace) -> int:
    if args.target != "embedded":
        raise cli.UsageError("cluster-scaling chooses its targets (cluster:N); drop --target")
    out = out_dir(args, "-cluster")
    series = []
    for n in args.nodes:
        args.target = f"cluster:{n}"
        base = cli.swarm_config(args, args.clients)
        if args.rate_per_node:
            base = replace(base, rate=base.rate * n)
        name = f"cluster_{n}"
        series.append(Series(base, SeriesWriter(out / name, base.parameters(), name, args.argv)))
    writers = run_series(series, [args.clients], Plan(interleave=False, quiet=args.quiet))
    scaling = scaling_document(args.nodes, series, writers, args.rate_per_node)
    write_json(out / "scaling.json", scaling)
    files = [
        (f"cluster:{n}", f"{w.directory.name}/{file}")
        for n, w in zip(args.nodes, writers, strict=True)
        if (file := w.index["runs"][0].get("file"))
    ]
    runs = [(label, load_run(out / file)) for label, file in files]
    charts = timeline.draw_runs([(label, run, file) for (label, run), (_, file) in zip(runs, files, strict=True)], out)
    write_report(out, scaling, runs, {label: charts[file] for label, file in files if file in charts})
    print(f"\nscaling: {out / 'scaling.md'}\n         {out / 'scaling.png'}")
    return 0 if all(p["error"] is None for p in scaling["points"]) else 1


def scaling_document(
    nodes: list[int], series: list[Series], writers: list[SeriesWriter], rate_per_node: bool
) -> ScalingDocument:
    points: list[ScalingPoint] = []
    for n, s, w in zip(nodes, series, writers, strict=True):
        entry = w.index["runs"][0]
        summary = entry.get("summary")
        points.append(
            {
                "nodes": n,
                "clients": s.base.clients,
                "rate": s.base.rate,
                "deliveries_per_s": summary["deliveries_per_s"] if summary else None,
                "p99_us": summary["p99_us"] if summary else None,
                "faults": summary["faults"] if summary else None,
                "speedup": None,
                "error": entry.get("error"),
            }
        )
    first = points[0]["deliveries_per_s"] if points else None
    for p in points:
        if first and p["deliveries_per_s"] is not None:
            p["speedup"] = p["deliveries_per_s"] / first
    return {"kind": "chatbench-cluster-scaling", "rate_per_node": rate_per_node, "points": points}


def write_report(
    out: Path,
    scaling: ScalingDocument,
    runs: list[tuple[str, RunDocument]] | None = None,
    over_time: dict[str, str] | None = None,
) -> None:
    """``scaling.md``/``.html`` and the chart; ``runs`` (label, run) add the
    table of each run's latencies by path, ``over_time`` (label -> chart) the
    links to each run's chart over time."""
    points = scaling["points"]
    plots.scaling_chart(
        [p["nodes"] for p in points],
        [p["deliveries_per_s"] for p in points],
        [p["p99_us"] for p in points],
        out / "scaling.png",
    )
    rows = [
        [
            str(p["nodes"]),
            str(p["clients"]),
            f"{p['rate']:g}",
            "-" if p["deliveries_per_s"] is None else f"{p['deliveries_per_s']:,.0f}",
            "-" if p["speedup"] is None else f"{p['speedup']:.2f}x (ideal {p['nodes'] / points[0]['nodes']:g}x)",
            "-" if p["p99_us"] is None else f"{p['p99_us'] / 1000:.2f}",
            "-" if p["faults"] is None else str(p["faults"]),
            md_cell(p["error"] or ""),
        ]
        for p in points
    ]
    load = "rate x nodes (every node carries the single process's load)" if scaling["rate_per_node"] else "fixed"
    blocks: list[doc.Block] = [
        doc.Heading(1, "Cluster scaling"),
        doc.Para(
            f"One run per node count: client i on node i mod N (round robin); offered load "
            f"{load}. The ideal is linear in the nodes; on a machine with fewer cores than processes "
            "(nodes + redis-server + the harness) the curve is bounded by the cores."
        ),
        doc.Table(
            ["nodes", "clients", "msg/s", "deliveries/s", "speed-up", "p99 ms", "faults", "error"], rows, "rrrrrrrl"
        ),
        doc.Image("deliveries/s and p99 vs nodes", "scaling.png"),
    ]
    for dim, meaning, table in label_tables(runs or []):
        blocks += [doc.Heading(2, f"By {dim}"), doc.Para(meaning), table]
    if over_time:
        links: list[list[doc.Cell]] = [[label, doc.Link("chart", chart)] for label, chart in over_time.items()]
        blocks += [
            doc.Heading(2, "Over time"),
            doc.Para(timeline.LINKS_NOTE),
            doc.Table(["run", "over time"], links, "ll"),
        ]
    (out / "scaling.md").write_text(doc.to_markdown(blocks))
    (out / "scaling.html").write_text(doc.to_html("chatbench cluster scaling", blocks))
