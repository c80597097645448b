"""``python -m bench sweep``: the default benchmark (``make bench``).

Every client count for each fan-out strategy, interleaved by client count
(10 queued, 10 direct, 50 queued, ...) so an interrupted sweep still
compares the strategies; one series directory per strategy (its run JSON
and ``index.json``, written by :class:`bench.results.SeriesWriter`), then
the charts and report (:mod:`bench.report`) and the ``reports/latest`` link.
:func:`run_series` is also how ``run``, ``capacity`` and ``compare`` run
their points.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

from bench import cli
from bench.live import OutputError, open_outputs
from bench.measure.thresholds import THRESHOLDS_FAILED_EXIT
from bench.report import fmt
from bench.report import sweep as sweep_report
from bench.report.runline import summary_line, threshold_lines
from bench.report.stall import STALL_DIR
from bench.results.schema import RunDocument
from bench.results.store import SeriesWriter, new_report_dir, point_latest
from bench.swarm import SwarmConfig, SwarmError, run_swarm

#: The default sweep (``make bench``).
DEFAULT_CLIENTS = (10, 50, 100, 250, 500, 1000)
#: What `make bench` compares: the default strategy and the seed's (add
#: `--fanout queued,threads,direct` for the per-client-writer design too).
DEFAULT_FANOUTS = ("queued", "direct")
LATEST = "latest"

#: The sweep's last point, per strategy (:func:`stall_series`): the README's
#: stalled-reader example.  20 clients, 1,500 msg/s of 3,900 B: the client that
#: stops reading is sent ~5.9 MB a second, more than the kernel buffers hold
#: within a second, so ``direct`` blocks on it; ``queued`` cuts it off at a
#: 64 KiB queue (the server's --send-queue-bytes, small so it happens at once).
STALL_CLIENTS = 20
STALL_RATE = 1500.0
STALL_PAYLOAD = 3900
STALL_QUEUE_BYTES = 65536

#: run_swarm, or a stand-in in tests.
RunFn = Callable[[SwarmConfig], RunDocument]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run every client count for each fan-out strategy (interleaved: 10 queued, 10 direct, 50 queued, ...), "
        "then one point per strategy in which a client stops reading (where the strategies differ), "
        "write the run JSON, index.json per strategy, four charts, report.md and report.html under "
        "reports/<timestamp>/, and point reports/latest at it. Expected deliveries/s = rate x (clients - 1)."
    )
    parser.epilog = f"Fan-out strategies without --fanout: {','.join(DEFAULT_FANOUTS)}."
    add_sweep_options(parser, DEFAULT_CLIENTS, "comma-separated client counts")
    parser.add_argument(
        "--no-stall-point",
        dest="stall_point",
        action="store_false",
        help=(
            f"skip the last point: per strategy, {STALL_CLIENTS} clients at {STALL_RATE:,.0f} msg/s of "
            f"{STALL_PAYLOAD:,} B with one client that stops reading (--duration long), which shows what the "
            "strategies are for (embedded target only)"
        ),
    )


def add_sweep_options(parser: argparse.ArgumentParser, clients: Sequence[int], clients_help: str) -> None:
    """--clients, the shared swarm groups, the live outputs, --keep-going and --strict (sweep and run)."""
    cli.add_parents(parser, *cli.swarm_parents(), cli.live_options())
    parser.add_argument(
        "--clients", type=cli.client_counts, default=list(clients), metavar="N,N,...", help=clients_help
    )
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="run larger client counts of a strategy even after one did not finish within the drain timeout",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 3 unless every point delivered everything, faultless"
    )


def run(args: argparse.Namespace) -> int:
    return execute(args, DEFAULT_FANOUTS, "chatbench fan-out report")


# ---------------------------------------------------------------------------
# running the points
# ---------------------------------------------------------------------------


@dataclass
class Series:
    """One strategy (or target) of a run set: its base config and its writer."""

    base: SwarmConfig
    writer: SeriesWriter


def series_name(target: str, fanout: str | None) -> str:
    """Series label and subdirectory name: the strategy, or the target."""
    if target == "embedded":
        return fanout or sweep_report.DEFAULT_FANOUT
    return "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in target)


@dataclass(frozen=True)
class Plan:
    """How to walk the points."""

    interleave: bool = True  #: by client count across the series (else series after series)
    keep_going: bool = False  #: run larger counts after a point did not finish
    quiet: bool = False
    prefix: bool = True  #: "label: " before each summary line
    repeat: int = 1  #: runs per (client count, series); interleaved: A B C A B C at each count


def run_series(
    series: Sequence[Series], clients: Sequence[int], plan: Plan, *, run: RunFn = run_swarm
) -> list[SeriesWriter]:
    """Every (client count, series) point; each result goes to its series' writer."""
    reps = range(1, plan.repeat + 1)
    by_count = [(n, r, s) for n in clients for r in reps for s in series]
    order = by_count if plan.interleave else [(n, r, s) for s in series for n in clients for r in reps]
    progress = PointProgress(
        [estimate_point_s(s.base, n) for n, _, s in order], sys.stderr, enabled=not plan.quiet and len(order) > 1
    )
    stopped: dict[int, tuple[int, str]] = {}  #: series -> (the count that did not finish, why)
    aborted: str | None = None  #: a threshold with abort-on-fail stopped a run: no more runs
    for n, r, s in order:
        w = s.writer
        if not plan.interleave and n == clients[0] and r == 1:
            print(f"== {w.label} ==", flush=True)
        if aborted is not None:
            w.add_error(n, f"skipped: {aborted}")
        elif id(s) in stopped and n > stopped[id(s)][0] and not plan.keep_going:
            w.add_error(n, f"skipped: {stopped[id(s)][1]}")
            print(f"{w.label} clients={n}: skipped ({stopped[id(s)][1]})", flush=True)
        else:
            progress.start(f"{w.label}, {n} clients" + (f", run {r}/{plan.repeat}" if plan.repeat > 1 else ""))
            doc = run_point(s, n, run, r)
            if doc is not None:
                print(f"{w.label}: {summary_line(doc)}" if plan.prefix else summary_line(doc), flush=True)
                for line in threshold_lines(doc):
                    print(line, flush=True)
                crossed = [t["threshold"] for t in doc.get("thresholds", []) if t["aborted"]]
                if crossed:
                    aborted = f"threshold {crossed[0]} stopped an earlier run (abort-on-fail)"
                if not doc.get("completed", True):
                    stopped[id(s)] = (
                        n,
                        (
                            f"{n} clients did not deliver everything within the {s.base.drain_timeout_s:g} s drain "
                            "timeout, so larger counts were not run (--keep-going runs them)"
                        ),
                    )
        progress.finish()
    return [s.writer for s in series]


def run_point(series: Series, clients: int, run: RunFn = run_swarm, repeat: int = 1) -> RunDocument | None:
    """One point (its ``repeat``-th run), written to the series; None (and an error entry) if it failed."""
    try:
        doc = run(cli.point_config(series.base, clients))
    except (SwarmError, ValueError) as exc:
        series.writer.add_error(clients, str(exc))
        print(f"{series.writer.label} clients={clients}: ERROR {exc}", flush=True)
        return None
    series.writer.add(doc, repeat)
    return doc


def stall_series(args: argparse.Namespace, strategies: Sequence[str | None], out: Path) -> list[Series]:
    """The stalled-reader point of each strategy, under ``out/stalled/``
    (the report's "When a client stops reading" section)."""
    out_series = []
    for f in strategies:
        base = replace(
            cli.swarm_config(args, STALL_CLIENTS, fanout=f),
            senders=None,
            rate=STALL_RATE,
            payload_bytes=STALL_PAYLOAD,
            stalled_clients=1,
            send_queue_bytes=STALL_QUEUE_BYTES,
        )
        name = series_name(base.target, f)
        writer = SeriesWriter(out / STALL_DIR / name, base.series_parameters(), f"{name}, 1 not reading", args.argv)
        out_series.append(Series(base, writer))
    return out_series


def make_series(
    args: argparse.Namespace, clients: Sequence[int], strategies: Sequence[str | None], out: Path
) -> list[Series]:
    out_series = []
    for f in strategies:
        base = cli.swarm_config(args, max(clients), fanout=f)
        name = series_name(base.target, f)
        out_series.append(Series(base, SeriesWriter(out / name, base.series_parameters(), name, args.argv)))
    return out_series


def exit_code(writers: Sequence[SeriesWriter], strict: bool) -> int:
    """1 if a point failed; with ``strict``, 3 if one lost, corrupted or failed to connect."""
    entries = [e for w in writers for e in w.index["runs"]]
    if any(e["status"] != "ok" for e in entries):
        return 1
    if strict:
        for e in entries:
            s = e.get("summary")
            if s is None or s["delivered_ratio"] != 1 or s["faults"] or s["failed_connections"]:
                return 3
    return 0


def out_dir(args: argparse.Namespace, suffix: str = "") -> Path:
    """--out (new or empty), or a new timestamped directory under --reports-root."""
    if args.out:
        out = Path(args.out)
        if out.exists() and any(out.iterdir()):
            raise cli.UsageError(f"--out {out} exists and is not empty")
        return out
    return new_report_dir(Path(args.reports_root), suffix)


def finish_report(out: Path, args: argparse.Namespace, title: str, latest_name: str) -> int:
    """Charts and report for ``out``; its warnings on stdout; the latest link."""
    try:
        written = sweep_report.build_report(out, title=title)
    except sweep_report.ReportError as exc:
        print(f"no report: {exc}", file=sys.stderr)
        return 1
    print(f"\nreport: {written['markdown']}\n        {written['html']}")
    sweep_report.print_warnings(sweep_report.load_series(out))
    if not args.out and not args.no_latest:
        latest = point_latest(out.parent, out, latest_name)
        if latest is not None:
            print(f"        {latest} -> {out.name}")
    return 0


def execute(args: argparse.Namespace, default_fanouts: Sequence[str], title: str, *, run: RunFn | None = None) -> int:
    """``sweep`` and ``run``: the points (shown and exported live as they go,
    :mod:`bench.live`), then the report; exit 99 when a threshold failed."""
    clients: list[int] = args.clients
    strategies = cli.fanouts(args, default_fanouts)
    cli.validate(args, clients, strategies)
    out = out_dir(args)
    print(
        f"{fmt.plural(len(clients) * len(strategies), 'point')}: clients {','.join(map(str, clients))} x "
        f"{', '.join(series_name(args.target, f) for f in strategies)}; {args.rate:g} msg/s, "
        f"{args.duration:g} s each; results in {out}",
        file=sys.stderr,
    )
    plan = Plan(keep_going=args.keep_going, quiet=args.quiet)
    try:
        live = open_outputs(args)
    except OutputError as exc:
        raise cli.UsageError(str(exc)) from exc
    checked = Checked(run or functools.partial(run_swarm, outputs=live.outputs))
    try:
        with live:
            writers = run_series(make_series(args, clients, strategies, out), clients, plan, run=checked)
            if getattr(args, "stall_point", False) and args.target == "embedded":
                run_series(stall_series(args, strategies, out), [STALL_CLIENTS], plan, run=checked)
    except KeyboardInterrupt:
        print("\ninterrupted: reporting the points that finished", file=sys.stderr)
        if sweep_report.find_indexes(out):
            finish_report(out, args, f"{title} (interrupted)", LATEST)
        return 130
    code = finish_report(out, args, title, LATEST)
    return exit_code(writers, args.strict) or checked.exit_code() or code


class Checked:
    """A run function that remembers whether a run's threshold failed."""

    def __init__(self, run: RunFn) -> None:
        self.run = run
        self.failed = 0

    def __call__(self, config: SwarmConfig) -> RunDocument:
        doc = self.run(config)
        self.failed += sum(1 for result in doc.get("thresholds", []) if not result["ok"])
        return doc

    def exit_code(self) -> int:
        """:data:`bench.measure.thresholds.THRESHOLDS_FAILED_EXIT` (99, k6's) when a threshold failed."""
        return THRESHOLDS_FAILED_EXIT if self.failed else 0


# ---------------------------------------------------------------------------
# progress
# ---------------------------------------------------------------------------


def _clock(seconds: float) -> str:
    s = max(0, round(seconds))
    return f"{s // 60}:{s % 60:02d}"


class PointProgress:
    """``[###.....] 3/12 direct, 250 clients  elapsed 0:41, ~1:30 left`` on stderr."""

    #: Characters in the bar: fits an 80-column terminal with the text after it.
    WIDTH = 24

    def __init__(self, estimates: Sequence[float], stream: TextIO, enabled: bool) -> None:
        self.estimates = list(estimates)
        self.stream = stream
        self.enabled = enabled
        self.t0 = time.monotonic()
        self.done = 0

    def start(self, what: str) -> None:
        if not self.enabled:
            return
        total = len(self.estimates)
        elapsed = time.monotonic() - self.t0
        done_est = sum(self.estimates[: self.done])
        left_est = sum(self.estimates[self.done :])
        scale = elapsed / done_est if done_est > 0 and self.done else 1.0
        frac = done_est / max(1e-9, done_est + left_est)
        filled = round(frac * self.WIDTH)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(
            f"[{bar}] {self.done + 1}/{total} {what}   elapsed {_clock(elapsed)}, ~{_clock(left_est * scale)} left\n"
        )
        self.stream.flush()

    def finish(self) -> None:
        self.done += 1


def estimate_point_s(config: SwarmConfig, clients: int) -> float:
    """A rough run time for one point (for the progress bar's time left)."""
    ramp = clients / config.ramp_per_s if config.ramp_per_s > 0 else 0.0
    traffic = config.warmup_s + (config.measured_messages / config.total_rate if config.rate > 0 else 1.0)
    return 2.0 + ramp + traffic + clients / 500
