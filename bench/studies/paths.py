"""``python -m bench cluster-paths``: latency of the two paths a line takes in a cluster.

The one-broadcast study (:mod:`bench.studies.onebroadcast`) on ``cluster:N``
with every node on a port of its own: R receivers on each node (receiver i
on node i mod N), and round after round ONE probe from the sender on node
(round mod N).  Every receiver reads it afterwards and its arrival is the
kernel's receive stamp minus the probe's intended send time, so reading late
costs nothing.  Each delivery is recorded under its label
(:mod:`bench.workload.labels`):

``same``    sender and receiver on one node: the node's own fan-out;
``across``  on different nodes (``path=cross``): publisher thread, Redis,
            the other node's subscriber thread, then its fan-out.

Every receiver must get exactly the round's probe, once (else the study fails).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TypedDict

from bench.report.fmt import ms
from bench.results.schema import Latency
from bench.studies.onebroadcast import Study, measure
from bench.targets import TargetError
from bench.wire.client import ClientError


class PathSummary(TypedDict):
    count: int
    p50_us: int | None
    p99_us: int | None
    max_us: int | None


class PathsResult(TypedDict):
    kind: str
    nodes: int
    receivers_per_node: int
    rounds: int
    same: PathSummary
    across: PathSummary


def summarize(lat: Latency | None) -> PathSummary:
    if lat is None:
        return {"count": 0, "p50_us": None, "p99_us": None, "max_us": None}
    return {"count": lat["count"], "p50_us": lat["p50_us"], "p99_us": lat["p99_us"], "max_us": lat["max_us"]}


def paths(nodes: int, receivers_per_node: int, rounds: int, payload: int = 64) -> PathsResult:
    """The study on ``cluster:nodes``; both paths' deliveries and latencies."""
    result = measure(
        Study(clients=nodes * receivers_per_node, rounds=rounds, target=f"cluster:{nodes}", payload=payload)
    )
    labels = result["labels"]
    return {
        "kind": "chatbench-cluster-paths",
        "nodes": nodes,
        "receivers_per_node": receivers_per_node,
        "rounds": rounds,
        "same": summarize(labels.get("path=same")),
        "across": summarize(labels.get("path=cross")),
    }


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.split("\n\n")[0] if __doc__ else None
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument("--nodes", type=int, default=2, help="server nodes (each on its own port)")
    parser.add_argument("--receivers", type=int, default=50, help="receivers on each node")
    parser.add_argument("--rounds", type=int, default=20, help="lines sent, one at a time, from node round mod N")
    parser.add_argument("--payload", type=int, default=64, help="characters of the probe's payload")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    if args.nodes < 2 or args.receivers < 1 or args.rounds < 1:
        print("bench cluster-paths: error: needs --nodes >= 2, --receivers >= 1, --rounds >= 1", file=sys.stderr)
        return 2
    try:
        result = paths(args.nodes, args.receivers, args.rounds, args.payload)
    except (RuntimeError, OSError, ClientError, TargetError) as exc:
        print(f"bench cluster-paths: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"one line at a time, {args.nodes} nodes x {args.receivers} receivers, {args.rounds} rounds:")
    for path, s in (("same", result["same"]), ("across", result["across"])):
        print(
            f"  {path:6} node: {s['count']:6} deliveries  p50 {ms(s['p50_us'])} ms  "
            f"p99 {ms(s['p99_us'])} ms  max {ms(s['max_us'])} ms"
        )
    return 0
