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
deliveries that arrived in those intervals.  The p99 the goal compares is
over steady traffic for both: the swarm's measured window (past its
warm-up; it runs as long as Locust's window by default) and Locust's
intervals of that same CPU window, their exact histograms merged (Locust's
whole-run figures, ramp included, are shown beside them).  Everything goes into
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
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import psutil

from bench.measure.stats import LatencyHistogram

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
    #: p50 and p99 of the steady window only (Locust: the intervals of the CPU
    #: window, past its ramp; the swarm: its measured window, the same as p50/p99)
    steady_p50_ms: float | None = None
    steady_p99_ms: float | None = None
    repeat: int = 1  #: which of ``--repeat`` runs (a median row: 0)
    #: how late the generator's probes went out (its share of the latency), p99
    send_lag_p99_ms: float | None = None


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


def run_name(generator: str, rate: float, repeat: int, args: argparse.Namespace) -> str:
    """A run's file name stem: ``locust-r5``, or ``locust-r5-2`` for the second of ``--repeat``."""
    return f"{generator}-r{rate:g}" + (f"-{repeat}" if args.repeat > 1 else "")


def run_locust(args: argparse.Namespace, rate: float, out: Path, repeat: int = 1) -> Row:
    name = run_name("locust", rate, repeat, args)
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
    return replace(locust_row(doc, samples, rate, args, f"{name}_fanout_hdr.json"), repeat=repeat)


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
    steady = merged_percentiles(window)
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
        steady_p50_ms=steady[0],
        steady_p99_ms=steady[1],
        send_lag_p99_ms=ms((doc.get("send_lag") or {}).get("summary", {}).get("p99_us")),
    )


def merged_percentiles(window: list[dict[str, Any]]) -> tuple[float | None, float | None]:
    """p50 and p99 (ms) of the deliveries of ``window``'s intervals, from
    their exact histograms merged (None: no interval holds one)."""
    merged = LatencyHistogram()
    for section in window:
        encoded = section.get("histogram")
        if encoded and encoded.get("data"):
            merged.merge(LatencyHistogram.decode(encoded["data"], int(encoded.get("clamped", 0))))
    if not merged.count:
        return None, None
    return ms(merged.percentile(50)), ms(merged.percentile(99))


def run_swarm(args: argparse.Namespace, rate: float, out: Path, repeat: int = 1) -> Row:
    name = run_name("swarm", rate, repeat, args)
    argv = [sys.executable, "-m", "bench", "run", "--clients", str(args.users), "--senders", str(args.users)]
    argv += ["--rate", f"{args.users * rate:g}", "--server-cpus", str(args.server_cpu)]
    argv += ["--harness-cpus", str(args.harness_cpu), "--workers", "1", "--out", str(out / name), "--quiet"]
    argv += ["--live", "off"]
    argv += ["--duration", f"{args.swarm_duration:g}"]
    with (out / f"{name}.out").open("wb") as log:
        proc = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=args.swarm_duration + GRACE_S)
        finally:
            stop(proc, signal.SIGTERM)
    runs = sorted((out / name).rglob("run-c*.json"))
    if code != 0 or not runs:
        raise SystemExit(f"locustmatrix: chat-bench run exited with {code}; see {out / (name + '.out')}")
    doc = json.loads(runs[0].read_text(encoding="utf-8"))
    return replace(swarm_row(doc, rate, args, str(runs[0].relative_to(out))), repeat=repeat)


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
        steady_p50_ms=ms(latency.get("p50_us")),
        steady_p99_ms=ms(latency.get("p99_us")),
        send_lag_p99_ms=ms((doc.get("send_lag_us") or {}).get("p99_us")),
    )


# --------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------

#: Row fields that are measurements (a median row holds their medians).
MEASURED = (
    "deliveries",
    "deliveries_per_s",
    "p50_ms",
    "p99_ms",
    "read_lag_p50_ms",
    "read_lag_p99_ms",
    "cpu_percent",
    "cpu_us_per_delivery",
    "lost",
    "faults",
    "steady_p50_ms",
    "steady_p99_ms",
    "send_lag_p99_ms",
)


def median_row(runs: list[Row]) -> Row:
    """One generator at one load over its repeats: each measurement's median
    (lost and faults: the largest, a fault in any run is a fault); ``repeat`` 0."""
    values: dict[str, Any] = {}
    for name in MEASURED:
        got = [getattr(r, name) for r in runs if getattr(r, name) is not None]
        if not got:
            values[name] = None
        elif name in ("lost", "faults"):
            values[name] = max(got)
        else:
            middle = statistics.median(got)
            values[name] = round(middle, 3) if isinstance(middle, float) else middle
    return replace(runs[0], repeat=0, file="", **values)


def spread(values: list[float | None]) -> list[float] | None:
    """[min, max] of the known values (None: none known)."""
    known = [v for v in values if v is not None]
    return [min(known), max(known)] if known else None


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def compare(locusts: list[Row], swarms: list[Row]) -> dict[str, Any]:
    """The goals on the medians of the repeats, with the spread of the
    ratios of the run pairs (Locust and swarm run back to back)."""
    result = verdicts(median_row(locusts), median_row(swarms))
    pairs = list(zip(locusts, swarms, strict=False))
    result["p99_ratio_pairs"] = spread([ratio(a.steady_p99_ms, b.steady_p99_ms) for a, b in pairs])
    result["cpu_ratio_pairs"] = spread([ratio(a.cpu_us_per_delivery, b.cpu_us_per_delivery) for a, b in pairs])
    result["repeats"] = len(pairs)
    return result


def verdicts(locust: Row, swarm: Row) -> dict[str, Any]:
    """Locust ÷ swarm and the issue's goals at one load: the p99s over the
    steady windows (the swarm's excludes its warm-up; Locust's whole-run p99
    holds its ramp too, so it is shown beside but not compared)."""
    p99_ok = None
    if locust.steady_p99_ms is not None and swarm.steady_p99_ms is not None:
        p99_ok = locust.steady_p99_ms <= P99_FACTOR * swarm.steady_p99_ms + P99_SLACK_MS
    cpu = ratio(locust.cpu_us_per_delivery, swarm.cpu_us_per_delivery)
    return {
        "rate_per_user": locust.rate_per_user,
        "p99_ratio": ratio(locust.steady_p99_ms, swarm.steady_p99_ms),
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


def markdown(rows: list[Row], compared: list[dict[str, Any]], made: str, runs: list[Row] | None = None) -> str:
    lines = [
        "# Locust against the swarm at the same load",
        "",
        f"Made by `tools/locustmatrix.py` ({made}). Server pinned to one core, the load generator to",
        "another; exact figures from each generator's own result (see `matrix.json`).",
        "",
        "Steady p50 and p99: Locust's over the same steady intervals as its CPU figure (past the",
        "ramp), the swarm's over its measured window (past its warm-up); p50 and p99: the whole",
        "result each generator prints (Locust's includes the ramp). The goal compares the steady ones.",
        "",
    ]
    if runs:
        lines += [
            f"Medians of {max(r.repeat for r in runs)} runs each, Locust and the swarm back to back "
            "(each run below); lost and faults: the most of any run.",
            "",
        ]
    lines += row_table(rows)
    if compared:
        lines += [
            "",
            f"| msg/s per user | Locust ÷ swarm steady p99 | p99 within {P99_FACTOR}x + {P99_SLACK_MS} ms | "
            f"Locust ÷ swarm CPU per delivery | within {CPU_FACTOR}x |",
            "|---:|---:|---|---:|---|",
        ]
        for c in compared:
            lines.append(
                f"| {c['rate_per_user']:g} | {cell(c['p99_ratio'])}{pairs(c.get('p99_ratio_pairs'))} | "
                f"{cell(c['p99_goal_met'])} | {cell(c['cpu_ratio'])}{pairs(c.get('cpu_ratio_pairs'))} | "
                f"{cell(c['cpu_goal_met'])} |"
            )
    if runs:
        lines += ["", "## Each run", "", *row_table(runs, with_repeat=True)]
    return "\n".join(lines) + "\n"


def pairs(spread: list[float] | None) -> str:
    """`` (MIN-MAX)`` of the run pairs' ratios, where they differ."""
    return "" if not spread or spread[0] == spread[1] else f" ({spread[0]:g}-{spread[1]:g})"


def row_table(rows: list[Row], with_repeat: bool = False) -> list[str]:
    """The rows as a markdown table."""
    head = "| load | generator | " + ("run | " if with_repeat else "")
    lines = [
        head + "deliveries/s | steady p50 | steady p99 | p50 | p99 | read lag p50 / p99 | send lag p99 | CPU "
        "| CPU per delivery | lost | faults |",
        "|---|---|" + ("---:|" if with_repeat else "") + "---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lag = f"{cell(r.read_lag_p50_ms)} / {cell(r.read_lag_p99_ms, ' ms')}"
        lines.append(
            f"| {r.users} users x {r.rate_per_user:g} msg/s | {r.generator} | "
            + (f"{r.repeat} | " if with_repeat else "")
            + f"{cell(r.deliveries_per_s)} | {cell(r.steady_p50_ms, ' ms')} | {cell(r.steady_p99_ms, ' ms')} | "
            f"{cell(r.p50_ms, ' ms')} | {cell(r.p99_ms, ' ms')} | {lag} | {cell(r.send_lag_p99_ms, ' ms')} | "
            f"{cell(r.cpu_percent, '%')} | {cell(r.cpu_us_per_delivery, ' µs')} | {cell(r.lost)} | {cell(r.faults)} |"
        )
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, required=True, help="directory for matrix.json, MATRIX.md and each run's files")
    p.add_argument("--users", type=int, default=100, help="Locust users = swarm clients = senders (default 100)")
    p.add_argument("--rates", default="2,5", help="messages/s per user, comma-separated (default 2,5)")
    p.add_argument("--seconds", type=int, default=20, help="Locust's -t (default 20)")
    p.add_argument(
        "--swarm-duration",
        type=float,
        default=None,
        help="chat-bench run --duration (default: as long as Locust's steady window, --seconds - --settle - 1)",
    )
    p.add_argument(
        "--settle", type=float, default=3.0, help="seconds of a Locust run left out of its CPU window (default 3)"
    )
    p.add_argument("--server-cpu", type=int, default=1, help="the core the server is pinned to (default 1)")
    p.add_argument("--harness-cpu", type=int, default=0, help="the core the load generator is pinned to (default 0)")
    p.add_argument("--only", choices=("locust", "swarm"), default=None, help="run one generator only")
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs of each generator at each load, Locust and the swarm back to back; the table gives medians "
        "and the spread of the run pairs' ratios (default 1; 3 on a shared machine)",
    )
    args = p.parse_args(argv)
    try:
        args.rate_list = [float(r) for r in args.rates.split(",") if r.strip()]
    except ValueError:
        p.error(f"--rates {args.rates!r}: write numbers, e.g. 2,5")
    if not args.rate_list or any(r <= 0 for r in args.rate_list) or args.users < 2 or args.seconds < 2:
        p.error("--rates must be positive, --users at least 2, --seconds at least 2")
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    if args.swarm_duration is None:
        args.swarm_duration = max(1.0, args.seconds - args.settle - 1.0)
    if shutil.which("taskset") is None:
        p.error("taskset is not installed (Debian: util-linux)")
    cpus = os.sched_getaffinity(0)
    if args.server_cpu == args.harness_cpu or not {args.server_cpu, args.harness_cpu} <= cpus:
        p.error(f"--server-cpu and --harness-cpu must be two different cores of {sorted(cpus)}")
    return args


def summarise(runs: list[Row], rates: list[float]) -> tuple[list[Row], list[dict[str, Any]]]:
    """Per load and generator one row (the median of its repeats; a single
    run as it is), and per load where both ran, the goals (:func:`compare`)."""
    rows: list[Row] = []
    compared: list[dict[str, Any]] = []
    for rate in rates:
        by: dict[str, list[Row]] = {}
        for r in runs:
            if r.rate_per_user == rate:
                by.setdefault(r.generator, []).append(r)
        for generator in ("locust", "swarm"):
            got = by.get(generator, [])
            if got:
                rows.append(got[0] if len(got) == 1 else median_row(got))
        if by.get("locust") and by.get("swarm"):
            compared.append(compare(by["locust"], by["swarm"]))
    return rows, compared


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    runs: list[Row] = []
    for repeat in range(1, args.repeat + 1):
        for rate in args.rate_list:
            if args.only != "swarm":
                runs.append(run_locust(args, rate, out, repeat))
            if args.only != "locust":
                runs.append(run_swarm(args, rate, out, repeat))
            done = f"{args.users} users x {rate:g} msg/s" + (
                f", run {repeat} of {args.repeat}" if args.repeat > 1 else ""
            )
            print(f"locustmatrix: {done} done", file=sys.stderr, flush=True)
    rows, compared = summarise(runs, args.rate_list)
    when = time.strftime("%Y-%m-%d %H:%M")
    made = f"{when} on {platform.node()}, {psutil.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f} at the end"
    document = {
        "kind": "chatbench.locustmatrix",
        "made": made,
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "rows": [asdict(r) for r in rows],
        "runs": [asdict(r) for r in runs],
        "compared": compared,
    }
    (out / "matrix.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    table = markdown(rows, compared, made, runs if args.repeat > 1 else None)
    (out / "MATRIX.md").write_text(table, encoding="utf-8")
    print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
