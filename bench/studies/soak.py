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
    python -m bench soak --churn 500 --churned 100000   # make soak-churn

With ``--churn RATE`` connections leave and are replaced during the soak
(``--churned N``: as many as N, the duration set to fit), and the server
must not leak: its threads, descriptors and RSS at the end of the sends are
compared with where they were after the first ``--baseline-after``
connections churned (both with the same clients connected): at most
``--churn-slack-pct`` above it (fewer is no leak); then, as without churn, it must return to idle.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NotRequired, TypedDict

import psutil

from bench import cli
from bench.report.runline import summary_line
from bench.results.schema import RunDocument, server_summary
from bench.swarm import run_swarm
from bench.targets import EmbeddedTarget

#: A soak is bounded: it must end within minutes on a developer machine.
MAX_DURATION_S = 600
MAX_CLIENTS = 5000
#: With churn: the server's footprint is sampled this often while the soak runs.
FOOTPRINT_EVERY_S = 0.25


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


class ChurnCheck(TypedDict):
    """With ``--churn``: the footprint after the first connections churned
    against the one at the end of the sends (the same clients connected)."""

    rate: float
    churned: int  #: connections that left and were replaced
    baseline_after: int  #: the baseline is the footprint after this many churned
    baseline: FootprintDoc
    end: FootprintDoc
    slack_percent: float
    server_cpu_percent: float | None  #: over the traffic window


class SoakResult(TypedDict):
    """What ``--out`` writes."""

    idle: FootprintDoc
    after: FootprintDoc
    peak_rss_bytes: int
    rss_growth_bytes: int
    problems: list[str]
    summary: str
    churn: NotRequired[ChurnCheck]


class FootprintLog:
    """The server's footprint sampled in a thread while the soak runs (wall clock)."""

    def __init__(self, proc: psutil.Process) -> None:
        self.proc = proc
        self.samples: list[tuple[float, Footprint]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="footprint", daemon=True)

    def __enter__(self) -> FootprintLog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(FOOTPRINT_EVERY_S):
            try:
                self.samples.append((time.time(), Footprint.of(self.proc)))
            except psutil.Error:
                return

    def at(self, t: float) -> Footprint | None:
        """The last sample taken at or before ``t`` (Unix seconds)."""
        before = [fp for when, fp in self.samples if when <= t]
        return before[-1] if before else None


def churn_check(doc: RunDocument, log: FootprintLog, args: argparse.Namespace) -> tuple[ChurnCheck | None, list[str]]:
    """The footprint after the first ``--baseline-after`` churned against the end's; the problems."""
    series = doc.get("intervals")
    churn = doc.get("churn")
    if series is None or churn is None:
        return None, ["the soak's run has no churn or no time axis"]
    rate = float(args.churn)
    origin = series["origin_unix_s"]
    baseline = log.at(origin + series["warmup_s"] + args.baseline_after / rate)
    end = log.at(origin + series["send_end_s"])
    if baseline is None or end is None:
        return None, ["the server's footprint was not sampled during the churn"]
    churned = sum(churn["leaves"].values())
    check: ChurnCheck = {
        "rate": rate,
        "churned": churned,
        "baseline_after": args.baseline_after,
        "baseline": baseline.as_doc(),
        "end": end.as_doc(),
        "slack_percent": args.churn_slack_pct,
        "server_cpu_percent": server_summary(doc).get("cpu_percent_window"),
    }
    problems = []
    if churned < args.baseline_after:
        problems.append(f"only {churned} connections churned, fewer than --baseline-after {args.baseline_after}")
    for key in ("threads", "fds", "rss_bytes"):
        first, last = baseline.as_doc()[key], end.as_doc()[key]
        # A leak only grows: fewer at the end is no fault (the baseline, taken mid-run, counts
        # the connections churning at that moment; the end, after the traffic, has none).
        if last - first > first * args.churn_slack_pct / 100:
            problems.append(
                f"{key} after {churned} churned: {last}, more than {args.churn_slack_pct:g}% over {first} "
                f"(after the first {args.baseline_after})"
            )
    return check, problems


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
        with FootprintLog(proc) as log:
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
    result: SoakResult = {
        "idle": idle.as_doc(),
        "after": after.as_doc(),
        "peak_rss_bytes": loaded_rss,
        "rss_growth_bytes": rss_growth,
        "problems": problems,
        "summary": summary_line(doc),
    }
    if args.churn > 0:
        check, churn_problems = churn_check(doc, log, args)
        problems += churn_problems
        if check is not None:
            result["churn"] = check
    return result


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
    g.add_argument(
        "--churned",
        type=int,
        metavar="N",
        help="with --churn: churn about N connections (sets --duration to N / RATE plus the tail)",
    )
    g.add_argument(
        "--baseline-after",
        type=int,
        default=1000,
        metavar="N",
        help="with --churn: the footprint after the first N churned is the baseline",
    )
    g.add_argument(
        "--churn-slack-pct",
        type=float,
        default=10.0,
        help="with --churn: threads, descriptors and RSS at the end at most this %% above the baseline",
    )
    cli.add_parents(parser, cli.traffic_options())
    parser.set_defaults(rate=200.0, duration=60.0)


#: The last half second of sends has no churn events (bench.swarm.churn.CHURN_TAIL_S), plus a margin.
CHURN_TAIL_S = 1.0


def run(args: argparse.Namespace) -> int:
    if args.churned is not None:
        if args.churn <= 0:
            raise cli.UsageError("--churned N needs --churn RATE")
        args.duration = args.churned / args.churn + CHURN_TAIL_S
    if args.duration > MAX_DURATION_S or args.clients > MAX_CLIENTS:
        raise cli.UsageError(f"a soak is bounded: at most {MAX_DURATION_S} s and {MAX_CLIENTS:,} clients")
    result = soak(args)
    idle, after = result["idle"], result["after"]
    print(
        f"idle RSS {idle['rss_bytes'] / 2**20:.1f} MiB / {idle['threads']} threads / {idle['fds']} fds; "
        f"peak RSS {result['peak_rss_bytes'] / 2**20:.1f} MiB; after RSS {after['rss_bytes'] / 2**20:.1f} MiB / "
        f"{after['threads']} threads / {after['fds']} fds"
    )
    check = result.get("churn")
    if check is not None:
        base, end = check["baseline"], check["end"]
        print(
            f"churn: {check['churned']:,} connections churned; after the first {check['baseline_after']:,}: "
            f"RSS {base['rss_bytes'] / 2**20:.1f} MiB / {base['threads']} threads / {base['fds']} fds; at the end: "
            f"RSS {end['rss_bytes'] / 2**20:.1f} MiB / {end['threads']} threads / {end['fds']} fds"
        )
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2))
    if result["problems"]:
        print("SOAK FAILED: " + "; ".join(result["problems"]))
        return 1
    print("soak passed: the server returned to its idle footprint")
    return 0
