"""Locust against the swarm at the same load: issue 29's table, reproduced.

For each ``--rates`` value R (messages per second per user) it runs, one
after the other, on a machine with at least two cores:

* **Locust**: our server pinned to ``--server-cpu`` (``taskset``, flood
  control off), then ``taskset -c HARNESS locust -f bench/locustfile.py
  --headless -u USERS -r USERS -t SECONDSs --chat-rate R`` against it;
* **the swarm**: ``chat-bench run --clients USERS --senders USERS --rate
  USERS*R --server-cpus SERVER --harness-cpus HARNESS --workers 1`` (it starts
  and pins the server itself).

From each it takes the exact fan-out p50 and p99, the harness's read lag
(kernel stamp to read) and the load generator's CPU per delivery: the swarm's
from its run document (the workers' CPU over the measured window / the
deliveries per second); Locust's from the Locust process's CPU time (psutil,
sampled every 0.25 s) over the whole intervals of its time axis that lie
after ``--settle`` seconds and before the last second, divided by the
deliveries that arrived in those intervals.  Everything goes into
``OUT/matrix.json`` and ``OUT/MATRIX.md`` (the table, with Locust ÷ swarm and
the issue's goals: p99 within 1.2x + 0.5 ms, CPU per delivery within 1.3x);
each run's own files stay beside them.  Loopback only, bounded, and every
process it starts is stopped::

    .venv/bin/python tools/locustmatrix.py --out reports/locust-matrix
    .venv/bin/python tools/locustmatrix.py --rates 2 --seconds 3 --swarm-duration 2 --out /tmp/lm  # smoke

Numbers are only worth comparing on a quiet machine (nothing else on the
two cores): the table says where and when it was made.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
LOCUSTFILE = REPO / "bench" / "locustfile.py"
LISTENING = re.compile(r"listening on (\S+):(\d+)")
#: CPU samples of the Locust process are this far apart (s).
SAMPLE_S = 0.25
#: Beyond a run's own time: how long a hung run may take before it is stopped (s).
GRACE_S = 120.0
#: The issue's goals: Locust's p99 within P99_FACTOR x the swarm's + P99_SLACK_MS,
#: its CPU per delivery within CPU_FACTOR x the swarm's.
P99_FACTOR, P99_SLACK_MS, CPU_FACTOR = 1.2, 0.5, 1.3


@dataclass
class Row:
    """One load generator at one load."""

    generator: str  #: locust or swarm
    users: int
    rate_per_user: float
    deliveries: int
    deliveries_per_s: float | None
    p50_ms: float | None
    p99_ms: float | None
    read_lag_p50_ms: float | None
    read_lag_p99_ms: float | None
    cpu_percent: float | None  #: the load generator's CPU over the window (% of one core)
    cpu_us_per_delivery: float | None
    lost: int | None
    faults: int | None  #: duplicated + reordered + corrupted
    file: str  #: the run's own result, relative to the output directory


def ms(value_us: float | None) -> float | None:
    return None if value_us is None else round(value_us / 1000, 3)


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------


def pinned(cpu: int, argv: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *argv]


def start_server(cpu: int, log: Path) -> tuple[subprocess.Popen[str], int]:
    """Our server, pinned, flood control off; its port."""
    argv = [sys.executable, "-m", "server", "--port", "0", "--rate-limit", "0", "--log-level", "INFO"]
    proc = subprocess.Popen(pinned(cpu, argv), cwd=REPO, stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        match = LISTENING.search(line)
        if match is not None:
            threading.Thread(target=drain, args=(proc.stderr, log), daemon=True).start()
            return proc, int(match[2])
    stop(proc)
    raise SystemExit("locustmatrix: the server did not start (see python -m server --help)")


def drain(stream: Any, path: Path) -> None:
    """The rest of a process's output into ``path`` (the pipe never fills)."""
    with path.open("w", encoding="utf-8") as sink:
        for line in stream:
            sink.write(line)


def stop(proc: subprocess.Popen[Any], sig: int = signal.SIGINT) -> None:
    """End ``proc`` and its session, by its process group (never by name)."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)


def sample_cpu(proc: subprocess.Popen[Any], samples: list[tuple[float, float]]) -> None:
    """(Unix time, user + system CPU seconds) of ``proc`` until it exits."""
    try:
        ps = psutil.Process(proc.pid)
        while proc.poll() is None:
            times = ps.cpu_times()
            samples.append((time.time(), times.user + times.system))
            time.sleep(SAMPLE_S)
    except psutil.Error:
        pass  # it exited between two samples


def cpu_between(samples: list[tuple[float, float]], start: float, end: float) -> float | None:
    """CPU seconds used between two Unix times (linear between samples)."""

    def at(t: float) -> float | None:
        for (t0, c0), (t1, c1) in itertools.pairwise(samples):
            if t0 <= t <= t1:
                return c0 + (c1 - c0) * (t - t0) / (t1 - t0) if t1 > t0 else c0
        return None

    a, b = at(start), at(end)
    return None if a is None or b is None else b - a


# --------------------------------------------------------------------------
# The two load generators
# --------------------------------------------------------------------------


def run_locust(args: argparse.Namespace, rate: float, out: Path) -> Row:
    name = f"locust-r{rate:g}"
    prefix = out / name
    server, port = start_server(args.server_cpu, out / f"{name}-server.log")
    samples: list[tuple[float, float]] = []
    try:
        argv = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--only-summary"]
        argv += ["-u", str(args.users), "-r", str(args.users), "-t", f"{args.seconds}s"]
        argv += ["--chat-rate", f"{rate:g}", "--host", f"tcp://127.0.0.1:{port}", "--csv", str(prefix)]
        with (out / f"{name}.out").open("wb") as log:
            proc = subprocess.Popen(
                pinned(args.harness_cpu, argv),
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            sampler = threading.Thread(target=sample_cpu, args=(proc, samples), daemon=True)
            sampler.start()
            try:
                code = proc.wait(timeout=args.seconds + GRACE_S)
            finally:
                stop(proc, signal.SIGTERM)
                sampler.join(timeout=5)
    finally:
        stop(server)
    if code != 0:
        raise SystemExit(f"locustmatrix: locust exited with {code}; see {out / (name + '.out')}")
    doc = json.loads(Path(f"{prefix}_fanout_hdr.json").read_text(encoding="utf-8"))
    return locust_row(doc, samples, rate, args, f"{name}_fanout_hdr.json")


def locust_row(
    doc: dict[str, Any], samples: list[tuple[float, float]], rate: float, args: argparse.Namespace, file: str
) -> Row:
    """A Locust run's row: CPU per delivery over its steady intervals."""
    origin = doc["interval_origin_unix_s"]
    first_cpu = samples[0][0] if samples else 0.0
    window = [
        s
        for s in doc["intervals"]
        if origin + s["start_s"] >= first_cpu + args.settle
        and origin + s["start_s"] + s["length_s"] <= (samples[-1][0] if samples else 0.0) - 1.0
    ]
    delivered = sum(s["delivered"] for s in window)
    cpu_s = (
        cpu_between(samples, origin + window[0]["start_s"], origin + window[-1]["start_s"] + window[-1]["length_s"])
        if window
        else None
    )
    span = sum(s["length_s"] for s in window)
    summary, lag, counts = doc["summary"], doc["read_lag"]["summary"], doc["integrity"]
    return Row(
        generator="locust",
        users=args.users,
        rate_per_user=rate,
        deliveries=summary["count"],
        deliveries_per_s=round(delivered / span, 1) if span else None,
        p50_ms=ms(summary.get("p50_us")),
        p99_ms=ms(summary.get("p99_us")),
        read_lag_p50_ms=ms(lag.get("p50_us")),
        read_lag_p99_ms=ms(lag.get("p99_us")),
        cpu_percent=round(100 * cpu_s / span, 1) if cpu_s is not None and span else None,
        cpu_us_per_delivery=round(1e6 * cpu_s / delivered, 2) if cpu_s is not None and delivered else None,
        lost=counts["lost"],
        faults=counts["duplicated"] + counts["reordered"] + counts["corrupted"],
        file=file,
    )


def run_swarm(args: argparse.Namespace, rate: float, out: Path) -> Row:
    name = f"swarm-r{rate:g}"
    argv = [sys.executable, "-m", "bench", "run", "--clients", str(args.users), "--senders", str(args.users)]
    argv += ["--rate", f"{args.users * rate:g}", "--server-cpus", str(args.server_cpu)]
    argv += ["--harness-cpus", str(args.harness_cpu), "--workers", "1", "--out", str(out / name), "--quiet"]
    argv += ["--live", "off"]
    if args.swarm_duration is not None:
        argv += ["--duration", f"{args.swarm_duration:g}"]
    with (out / f"{name}.out").open("wb") as log:
        proc = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=(args.swarm_duration or 5) + GRACE_S)
        finally:
            stop(proc, signal.SIGTERM)
    runs = sorted((out / name).rglob("run-c*.json"))
    if code != 0 or not runs:
        raise SystemExit(f"locustmatrix: chat-bench run exited with {code}; see {out / (name + '.out')}")
    doc = json.loads(runs[0].read_text(encoding="utf-8"))
    return swarm_row(doc, rate, args, str(runs[0].relative_to(out)))


def swarm_row(doc: dict[str, Any], rate: float, args: argparse.Namespace, file: str) -> Row:
    """A swarm run's row, from its run document."""
    latency, lag = doc["latency_us"], doc.get("receive_lag_us") or {}
    per_s = doc["deliveries"].get("per_s")
    cpu = doc["resources"].get("harness_cpu_percent_window")
    counts = doc["integrity"]
    return Row(
        generator="swarm",
        users=args.users,
        rate_per_user=rate,
        deliveries=doc["deliveries"]["delivered"],
        deliveries_per_s=per_s,
        p50_ms=ms(latency.get("p50_us")),
        p99_ms=ms(latency.get("p99_us")),
        read_lag_p50_ms=ms(lag.get("p50_us")),
        read_lag_p99_ms=ms(lag.get("p99_us")),
        cpu_percent=cpu,
        cpu_us_per_delivery=round(1e4 * cpu / per_s, 2) if cpu is not None and per_s else None,
        lost=counts["lost"],
        faults=counts["duplicated"] + counts["reordered"] + counts["corrupted"],
        file=file,
    )


# --------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def verdicts(locust: Row, swarm: Row) -> dict[str, Any]:
    """Locust ÷ swarm and the issue's goals at one load."""
    p99_ok = None
    if locust.p99_ms is not None and swarm.p99_ms is not None:
        p99_ok = locust.p99_ms <= P99_FACTOR * swarm.p99_ms + P99_SLACK_MS
    cpu = ratio(locust.cpu_us_per_delivery, swarm.cpu_us_per_delivery)
    return {
        "rate_per_user": locust.rate_per_user,
        "p99_ratio": ratio(locust.p99_ms, swarm.p99_ms),
        "p99_goal_met": p99_ok,
        "cpu_ratio": cpu,
        "cpu_goal_met": None if cpu is None else cpu <= CPU_FACTOR,
    }


def cell(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    return f"{value:g}{unit}" if isinstance(value, float) else f"{value}{unit}"


def markdown(rows: list[Row], compared: list[dict[str, Any]], made: str) -> str:
    lines = [
        "# Locust against the swarm at the same load",
        "",
        f"Made by `tools/locustmatrix.py` ({made}). Server pinned to one core, the load generator to",
        "another; exact figures from each generator's own result (see `matrix.json`).",
        "",
        "| load | generator | deliveries/s | p50 | p99 | read lag p50 / p99 | CPU | CPU per delivery | lost | faults |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lag = f"{cell(r.read_lag_p50_ms)} / {cell(r.read_lag_p99_ms, ' ms')}"
        lines.append(
            f"| {r.users} users x {r.rate_per_user:g} msg/s | {r.generator} | {cell(r.deliveries_per_s)} | "
            f"{cell(r.p50_ms, ' ms')} | {cell(r.p99_ms, ' ms')} | {lag} | "
            f"{cell(r.cpu_percent, '%')} | {cell(r.cpu_us_per_delivery, ' µs')} | {cell(r.lost)} | {cell(r.faults)} |"
        )
    if compared:
        lines += [
            "",
            f"| msg/s per user | Locust ÷ swarm p99 | p99 within {P99_FACTOR}x + {P99_SLACK_MS} ms | "
            f"Locust ÷ swarm CPU per delivery | within {CPU_FACTOR}x |",
            "|---:|---:|---|---:|---|",
        ]
        for c in compared:
            lines.append(
                f"| {c['rate_per_user']:g} | {cell(c['p99_ratio'])} | {cell(c['p99_goal_met'])} | "
                f"{cell(c['cpu_ratio'])} | {cell(c['cpu_goal_met'])} |"
            )
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, required=True, help="directory for matrix.json, MATRIX.md and each run's files")
    p.add_argument("--users", type=int, default=100, help="Locust users = swarm clients = senders (default 100)")
    p.add_argument("--rates", default="2,5", help="messages/s per user, comma-separated (default 2,5)")
    p.add_argument("--seconds", type=int, default=20, help="Locust's -t (default 20)")
    p.add_argument("--swarm-duration", type=float, default=None, help="chat-bench run --duration (default: its own, 5)")
    p.add_argument(
        "--settle", type=float, default=3.0, help="seconds of a Locust run left out of its CPU window (default 3)"
    )
    p.add_argument("--server-cpu", type=int, default=1, help="the core the server is pinned to (default 1)")
    p.add_argument("--harness-cpu", type=int, default=0, help="the core the load generator is pinned to (default 0)")
    p.add_argument("--only", choices=("locust", "swarm"), default=None, help="run one generator only")
    args = p.parse_args(argv)
    try:
        args.rate_list = [float(r) for r in args.rates.split(",") if r.strip()]
    except ValueError:
        p.error(f"--rates {args.rates!r}: write numbers, e.g. 2,5")
    if not args.rate_list or any(r <= 0 for r in args.rate_list) or args.users < 2 or args.seconds < 2:
        p.error("--rates must be positive, --users at least 2, --seconds at least 2")
    if shutil.which("taskset") is None:
        p.error("taskset is not installed (Debian: util-linux)")
    cpus = os.sched_getaffinity(0)
    if args.server_cpu == args.harness_cpu or not {args.server_cpu, args.harness_cpu} <= cpus:
        p.error(f"--server-cpu and --harness-cpu must be two different cores of {sorted(cpus)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    compared: list[dict[str, Any]] = []
    for rate in args.rate_list:
        locust = run_locust(args, rate, out) if args.only != "swarm" else None
        swarm = run_swarm(args, rate, out) if args.only != "locust" else None
        rows += [r for r in (locust, swarm) if r is not None]
        if locust is not None and swarm is not None:
            compared.append(verdicts(locust, swarm))
        print(f"locustmatrix: {args.users} users x {rate:g} msg/s done", file=sys.stderr, flush=True)
    when = time.strftime("%Y-%m-%d %H:%M")
    made = f"{when} on {platform.node()}, {psutil.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f} at the end"
    document = {
        "kind": "chatbench.locustmatrix",
        "made": made,
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "rows": [asdict(r) for r in rows],
        "compared": compared,
    }
    (out / "matrix.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    table = markdown(rows, compared, made)
    (out / "MATRIX.md").write_text(table, encoding="utf-8")
    print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
