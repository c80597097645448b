"""``python -m bench handshakes``: TLS handshakes per second each server takes,
and how long they take (full and resumed), interleaved.

For each repeat, target and phase (A-full A-resumed B-full ..., every one
on a fresh server the harness starts with TLS and a certificate it
generates): pin the server to ``--server-cpus``, then ``--workers``
processes (:mod:`bench.swarm.handshakes`, pinned to ``--harness-cpus``) each
keep ``--concurrency`` connection attempts in flight for ``--duration``
seconds: connect, TLS handshake, register (log in and join, as a client
does; ``--no-register``: the handshake alone), close, and again.  Phases:

``full``      every handshake a full one (no session offered);
``resumed``   each attempt offers the previous attempt's session (a TLS 1.3
              ticket; the server decides: the histogram says what it did);
``plain``     no TLS at all: the connection rate the handshake is paid from.

Per run: attempts finished per second (``attempts_per_s``, the capacity
when the server, not the harness, is the limit: ``harness_cpu_percent``
says how busy the load generator was), the server's CPU µs per attempt
(psutil, the window), and HDR percentiles of each phase of an attempt:
``connect_us``, ``tls_full_us``, ``tls_resumed_us``, ``register_us``,
``total_us`` (the histograms are in the document, HDR-encoded).  Medians
over the repeats go to ``OUT/handshakes.json`` and stdout.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TypedDict

import psutil

from bench import cli
from bench.measure.stats import LatencyHistogram
from bench.net.tls import TlsOptions
from bench.progname import PROG
from bench.results.schema import Histogram, Latency
from bench.results.store import write_json
from bench.studies import sweep
from bench.swarm.handshakes import HandshakePlan, HandshakeResult, handshake_main
from bench.swarm.pinning import PinningError, available_cpus, check_cpus, cpu_list, pin_process
from bench.swarm.series import histogram_doc
from bench.targets import Security, Target, TargetError, certs, make_target
from bench.wire.credentials import Logins

DEFAULT_TARGETS = ("embedded", "ngircd", "mosquitto", "redis", "nats")
PHASES = ("full", "resumed", "plain")
DEFAULT_PHASES = ("full", "resumed")
DEFAULT_ROOT = "reports/handshakes"
#: Seconds before the window opens: every handshake process is up and waiting.
START_LEAD_S = 1.5
#: Seconds past the window the processes get to report.
COLLECT_SLACK_S = 30.0


class HandshakeRun(TypedDict):
    target: str
    phase: str
    repeat: int
    status: str  #: "ok" or the error
    completed: int
    attempts_per_s: float | None
    failures: dict[str, int]
    server_cpu_us_per_attempt: float | None
    server_cpu_percent: float | None
    harness_cpu_percent: float | None  #: the handshake processes' CPU over the window, per process
    #: of the handshakes, the share the server resumed (0 in a ``resumed`` phase: it never resumes)
    resumed_share: float | None
    connect_us: Latency | None
    tls_full_us: Latency | None
    tls_resumed_us: Latency | None
    register_us: Latency | None
    total_us: Latency | None
    histograms: dict[str, Histogram]


class HandshakesDocument(TypedDict):
    kind: str
    created_at: str
    command: list[str]
    parameters: dict[str, object]
    runs: list[HandshakeRun]
    #: target -> phase -> figure -> [median, min, max]
    medians: dict[str, dict[str, dict[str, list[float | None]]]]


@dataclass
class Merged:
    completed: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    cpu_s: float = 0.0
    hists: dict[str, LatencyHistogram] = field(default_factory=dict)

    def add(self, result: HandshakeResult) -> None:
        self.completed += result.completed
        self.failures.update(result.failures)
        self.cpu_s += result.cpu_s
        for name in ("connect", "tls_full", "tls_resumed", "register", "total"):
            self.hists.setdefault(name, LatencyHistogram()).merge(getattr(result, name).decode())


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "TLS handshakes per second and their latency (full and resumed) for each server, on fresh servers "
        "started with TLS, interleaved and repeated."
    )
    parser.epilog = (
        f"Example (2 cores): `{PROG} handshakes --targets embedded,redis --server-cpus 1 --harness-cpus 0 "
        "--repeat 3`. Writes OUT/handshakes.json."
    )
    g = parser.add_argument_group("handshakes")
    g.add_argument("--targets", type=cli.target_list, default=list(DEFAULT_TARGETS), help="comma-separated targets")
    g.add_argument("--phases", type=phase_list, default=list(DEFAULT_PHASES), help=f"of {', '.join(PHASES)}")
    g.add_argument("--duration", type=float, default=3.0, help="seconds each phase is measured")
    g.add_argument("--concurrency", type=int, default=8, help="attempts in flight per handshake process")
    g.add_argument("--workers", type=int, help="handshake processes (default: one per harness CPU, else CPUs - 1)")
    g.add_argument("--repeat", type=int, default=1, help="runs per target and phase, interleaved")
    g.add_argument("--no-register", action="store_true", help="an attempt ends at the handshake (no login, no join)")
    g.add_argument("--timeout", type=float, default=10.0, help="seconds one attempt may take before it fails")
    g.add_argument("--server-cpus", type=cpu_list, metavar="CPUS", help="pin the server to these CPUs")
    g.add_argument("--harness-cpus", type=cpu_list, metavar="CPUS", help="pin the handshake processes to these CPUs")
    cli.add_parents(parser, cli.login_options(), cli.output_options())
    parser.set_defaults(reports_root=DEFAULT_ROOT)


def phase_list(text: str) -> list[str]:
    phases = [p.strip() for p in text.split(",") if p.strip()]
    if not phases or any(p not in PHASES for p in phases):
        raise argparse.ArgumentTypeError(f"phases are {', '.join(PHASES)}; got {text!r}")
    return list(dict.fromkeys(phases))


@dataclass(frozen=True)
class Study:
    """The options of one ``handshakes`` run."""

    duration_s: float
    concurrency: int
    workers: int
    register: bool
    timeout_s: float
    logins: Logins | None
    server_cpus: tuple[int, ...] | None
    harness_cpus: tuple[int, ...] | None


def worker_count(args: argparse.Namespace) -> int:
    if args.workers is not None:
        return max(1, int(args.workers))
    if args.harness_cpus:
        return len(args.harness_cpus)
    return max(1, len(available_cpus()) - 1)


def one_run(study: Study, name: str, phase: str, repeat: int) -> HandshakeRun:
    """A fresh server, the handshake processes against it for one window."""
    security = Security(tls=phase != "plain", logins=study.logins)
    target = make_target(name, security=security)
    address = target.start()
    try:
        if study.server_cpus and target.pid is not None:
            pin_process(target.pid, study.server_cpus)
        return measure(study, target, address, name, phase, repeat)
    finally:
        target.stop()


def measure(study: Study, target: Target, address: tuple[str, int], name: str, phase: str, repeat: int) -> HandshakeRun:
    tls = None if phase == "plain" else TlsOptions(ca_file=certs.ca_file(), resume=phase == "resumed")
    start_ns = time.monotonic_ns() + int(START_LEAD_S * 1e9)
    end_ns = start_ns + int(study.duration_s * 1e9)
    plans = [
        HandshakePlan(
            index=w,
            address=address,
            protocol=target.protocol,
            tls=tls,
            logins=study.logins,
            concurrency=study.concurrency,
            start_ns=start_ns,
            end_ns=end_ns,
            register=study.register,
            timeout_s=study.timeout_s,
            name_prefix=f"hs{repeat}{phase[0]}",
            cpus=study.harness_cpus,
        )
        for w in range(study.workers)
    ]
    server = psutil.Process(target.pid) if target.pid is not None else None
    with mp.get_context("spawn").Pool(study.workers) as pool:
        pending = pool.map_async(handshake_main, plans)
        time.sleep(max(0.0, (start_ns - time.monotonic_ns()) / 1e9))
        before = cpu_s(server)
        time.sleep(max(0.0, (end_ns - time.monotonic_ns()) / 1e9))
        after = cpu_s(server)
        results = pending.get(timeout=study.duration_s + study.timeout_s + COLLECT_SLACK_S)
    merged = Merged()
    for result in results:
        merged.add(result)
    used = after - before if after is not None and before is not None else None
    return row(study, merged, name, phase, repeat, used)


def cpu_s(process: psutil.Process | None) -> float | None:
    """A process's CPU time so far (user + system), None without one (or once it is gone)."""
    if process is None:
        return None
    try:
        times = process.cpu_times()
    except psutil.Error:
        return None
    return float(times.user + times.system)


def row(study: Study, merged: Merged, name: str, phase: str, repeat: int, cpu_s: float | None) -> HandshakeRun:
    hists = merged.hists
    done = merged.completed

    def summary(key: str) -> Latency | None:
        hist = hists.get(key)
        return hist.summary() if hist is not None and hist.count else None

    return {
        "target": name,
        "phase": phase,
        "repeat": repeat,
        "status": "ok" if done else "error: no attempt finished (" + json.dumps(dict(merged.failures))[:300] + ")",
        "completed": done,
        "attempts_per_s": round(done / study.duration_s, 1),
        "failures": dict(merged.failures),
        "server_cpu_us_per_attempt": round(cpu_s / done * 1e6, 1) if cpu_s is not None and done else None,
        "server_cpu_percent": round(cpu_s / study.duration_s * 100, 1) if cpu_s is not None else None,
        "harness_cpu_percent": round(merged.cpu_s / (study.duration_s * study.workers) * 100, 1),
        "resumed_share": resumed_share(hists),
        "connect_us": summary("connect"),
        "tls_full_us": summary("tls_full"),
        "tls_resumed_us": summary("tls_resumed"),
        "register_us": summary("register"),
        "total_us": summary("total"),
        "histograms": {k: histogram_doc(h) for k, h in hists.items() if h.count},
    }


def resumed_share(hists: dict[str, LatencyHistogram]) -> float | None:
    full, resumed = hists.get("tls_full"), hists.get("tls_resumed")
    total = (full.count if full else 0) + (resumed.count if resumed else 0)
    return round((resumed.count if resumed else 0) / total, 4) if total else None


def error_row(name: str, phase: str, repeat: int, why: str) -> HandshakeRun:
    return {
        "target": name,
        "phase": phase,
        "repeat": repeat,
        "status": f"error: {why}",
        "completed": 0,
        "attempts_per_s": None,
        "failures": {},
        "server_cpu_us_per_attempt": None,
        "server_cpu_percent": None,
        "harness_cpu_percent": None,
        "resumed_share": None,
        "connect_us": None,
        "tls_full_us": None,
        "tls_resumed_us": None,
        "register_us": None,
        "total_us": None,
        "histograms": {},
    }


def figures(run: HandshakeRun) -> dict[str, float | None]:
    """The figures medians are taken of (the handshake of the run's phase)."""
    tls = run["tls_resumed_us"] if run["phase"] == "resumed" else run["tls_full_us"]
    total = run["total_us"]
    return {
        "attempts_per_s": run["attempts_per_s"],
        "server_cpu_us_per_attempt": run["server_cpu_us_per_attempt"],
        "resumed_share": run["resumed_share"],
        "tls_p50_us": tls["p50_us"] if tls else None,
        "tls_p99_us": tls["p99_us"] if tls else None,
        "total_p99_us": total["p99_us"] if total else None,
    }


def medians(runs: list[HandshakeRun]) -> dict[str, dict[str, dict[str, list[float | None]]]]:
    out: dict[str, dict[str, dict[str, list[float]]]] = {}
    for run in runs:
        if run["status"] != "ok":
            continue
        by_phase = out.setdefault(run["target"], {}).setdefault(run["phase"], {})
        for key, value in figures(run).items():
            if value is not None:
                by_phase.setdefault(key, []).append(value)
    return {
        target: {phase: {k: spread(v) for k, v in figs.items() if v} for phase, figs in phases.items()}
        for target, phases in out.items()
    }


def spread(values: list[float]) -> list[float | None]:
    """[median, min, max]."""
    return [statistics.median(values), min(values), max(values)]


def run(args: argparse.Namespace) -> int:
    if args.repeat < 1 or args.duration <= 0 or args.concurrency < 1:
        raise cli.UsageError("--repeat and --concurrency must be at least 1, --duration positive")
    if any(":" in t for t in args.targets):
        raise cli.UsageError("handshakes starts its targets itself: name them (embedded, redis, ...), not HOST:PORT")
    why = check_cpus(args.server_cpus or (), args.harness_cpus or ())
    if why is not None:
        raise cli.UsageError(why)
    _, logins = cli.client_security(args)
    study = Study(
        args.duration,
        args.concurrency,
        worker_count(args),
        not args.no_register,
        args.timeout,
        logins,
        args.server_cpus,
        args.harness_cpus,
    )
    for name in args.targets:  # installed, and can be started with TLS? (a clear error before any run)
        make_target(name, security=Security(tls="full" in args.phases or "resumed" in args.phases, logins=logins))
    out = sweep.out_dir(args)
    runs: list[HandshakeRun] = []
    for rep in range(1, args.repeat + 1):
        for name in args.targets:
            for phase in args.phases:
                try:
                    got = one_run(study, name, phase, rep)
                except (TargetError, PinningError, OSError, mp.TimeoutError) as exc:
                    got = error_row(name, phase, rep, str(exc) or type(exc).__name__)
                runs.append(got)
                shown = {k: v for k, v in got.items() if k != "histograms"}
                print(json.dumps(shown), flush=True)
    doc: HandshakesDocument = {
        "kind": "chatbench.handshakes",
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": list(args.argv),
        "parameters": {
            "duration_s": study.duration_s,
            "concurrency": study.concurrency,
            "workers": study.workers,
            "register": study.register,
            "logins": logins.describe() if logins is not None else None,
            "server_cpus": list(study.server_cpus) if study.server_cpus else None,
            "harness_cpus": list(study.harness_cpus) if study.harness_cpus else None,
            "cpu_count": os.cpu_count(),
        },
        "runs": runs,
        "medians": medians(runs),
    }
    write_json(out / "handshakes.json", doc)
    for target, phases in doc["medians"].items():
        for phase, figs in phases.items():
            text = "; ".join(f"{k} {v[0]:.4g} ({v[1]:.4g}-{v[2]:.4g})" for k, v in figs.items() if v[0] is not None)
            print(f"{target} {phase}: {text}")
    print(f"handshakes: {out / 'handshakes.json'}", file=sys.stderr)
    return 0 if all(r["status"] == "ok" for r in runs) else 1
