"""A bounded soak: steady chat traffic for a while, then check that the server
gives back what it took.

Starts the embedded server, records its RSS, thread count and open
descriptors while idle, drives ``--clients`` clients at ``--rate`` messages/s
for ``--duration`` seconds with the swarm (every delivery checked), lets the
clients leave, and checks that threads and descriptors are back at the idle
baseline and RSS is within ``--rss-slack-mib`` of it.  Exit code 0 if so and
no delivery was lost, 1 otherwise.  Not part of CI (it runs for a minute)::

    python -m bench soak                      # 60 s, 200 clients, 200 msg/s
    python -m bench soak --duration 10 --clients 50
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypedDict

import psutil

from bench import cli
from bench.report.runline import summary_line
from bench.results.schema import server_summary
from bench.swarm import run_swarm
from bench.targets import EmbeddedTarget

#: A soak is bounded: it must end within minutes on a developer machine.
MAX_DURATION_S = 600
MAX_CLIENTS = 5000


@dataclass(frozen=True)
class Footprint:
    rss_bytes: int
    threads: int
    fds: int

    def as_doc(self) -> FootprintDoc:
        return {"rss_bytes": self.rss_bytes, "threads": self.threads, "fds": self.fds}

    @classmethod
    def of(cls, proc: psutil.Process) -> Footprint:
        return cls(proc.memory_info().rss, proc.num_threads(), proc.num_fds())


def settle(proc: psutil.Process, baseline: Footprint, timeout: float) -> Footprint:
    """Sample until threads and descriptors are back at the baseline (or time out)."""
    deadline = time.monotonic() + timeout
    current = Footprint.of(proc)
    while time.monotonic() < deadline:
        current = Footprint.of(proc)
        if current.threads <= baseline.threads and current.fds <= baseline.fds:
            break
        time.sleep(0.2)
    return current


class FootprintDoc(TypedDict):
    rss_bytes: int
    threads: int
    fds: int


class SoakResult(TypedDict):
    """What ``--out`` writes."""

    idle: FootprintDoc
    after: FootprintDoc
    peak_rss_bytes: int
    rss_growth_bytes: int
    problems: list[str]
    summary: str


def soak(args: argparse.Namespace) -> SoakResult:
    with EmbeddedTarget(["--log-level", "WARNING"]) as target:  # entering starts it
        assert target.pid is not None and target.address is not None
        host, port = target.address
        proc = psutil.Process(target.pid)
        time.sleep(0.5)
        idle = Footprint.of(proc)
        print(
            f"idle server: RSS {idle.rss_bytes / 2**20:.1f} MiB, {idle.threads} threads, {idle.fds} fds",
            file=sys.stderr,
        )
        config = replace(
            cli.swarm_config(args, args.clients), target=f"{host}:{port}", server_pid=target.pid, label="soak"
        )
        doc = run_swarm(config)
        print(summary_line(doc))
        loaded_rss = int(server_summary(doc).get("rss_max_bytes") or 0)
        after = settle(proc, idle, args.settle)
    rss_growth = after.rss_bytes - idle.rss_bytes
    problems = []
    if after.threads > idle.threads:
        problems.append(f"threads {after.threads} > idle {idle.threads}")
    if after.fds > idle.fds:
        problems.append(f"descriptors {after.fds} > idle {idle.fds}")
    if rss_growth > args.rss_slack_mib * 2**20:
        problems.append(f"RSS grew {rss_growth / 2**20:.1f} MiB > {args.rss_slack_mib} MiB")
    if doc["integrity"]["faults"]:
        problems.append(f"integrity faults: {doc['integrity']}")
    return {
        "idle": idle.as_doc(),
        "after": after.as_doc(),
        "peak_rss_bytes": loaded_rss,
        "rss_growth_bytes": rss_growth,
        "problems": problems,
        "summary": summary_line(doc),
    }


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Bounded soak of the embedded server: steady traffic, then check that RSS, "
        "threads and descriptors return to the idle baseline."
    )
    g = parser.add_argument_group("soak")
    g.add_argument("--clients", type=int, default=200, help="chat clients")
    g.add_argument("--settle", type=float, default=10.0, help="seconds to wait for cleanup afterwards")
    g.add_argument("--rss-slack-mib", type=float, default=16.0, help="allowed RSS growth over idle")
    g.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    cli.add_parents(parser, cli.traffic_options())
    parser.set_defaults(rate=200.0, duration=60.0)


def run(args: argparse.Namespace) -> int:
    if args.duration > MAX_DURATION_S or args.clients > MAX_CLIENTS:
        raise cli.UsageError(f"a soak is bounded: at most {MAX_DURATION_S} s and {MAX_CLIENTS:,} clients")
    result = soak(args)
    idle, after = result["idle"], result["after"]
    print(
        f"idle RSS {idle['rss_bytes'] / 2**20:.1f} MiB / {idle['threads']} threads / {idle['fds']} fds; "
        f"peak RSS {result['peak_rss_bytes'] / 2**20:.1f} MiB; after RSS {after['rss_bytes'] / 2**20:.1f} MiB / "
        f"{after['threads']} threads / {after['fds']} fds"
    )
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2))
    if result["problems"]:
        print("SOAK FAILED: " + "; ".join(result["problems"]))
        return 1
    print("soak passed: the server returned to its idle footprint")
    return 0
