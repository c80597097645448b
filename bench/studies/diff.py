"""``python -m bench diff BASE NEW``: two results point by point, ratios NEW/BASE.

BASE and NEW are results directories (what ``sweep``, ``run``, ``capacity``
or ``compare`` wrote: series directories holding ``index.json``, or one
series directory), or ``--baseline NAME`` stands for BASE: a result kept by
``python -m bench save`` (:mod:`bench.studies.baselines`).  Points are
matched by series (strategy or target) and client count.

The table goes to stdout as markdown; ``--out DIR`` also writes ``diff.md``
and an overlay chart (BASE dashed, NEW solid).  ``--fail`` turns the diff
into a check, like pytest-benchmark's ``--benchmark-compare-fail`` and k6's
thresholds: ``p99:+10%`` = NEW's p99 may be at most 10% above BASE's,
``deliveries:-5%`` = NEW's deliveries/s at most 5% below.  Numbers from
different machines (the runs' ``environment``: CPU model, CPU count,
memory) are refused unless ``--force``.

Exit codes: 0 every point within the limits (or no ``--fail``), 1 a point
past a limit, 2 a usage error: unreadable results, no point in common,
different machines without ``--force``, a bad ``--fail``.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import cli
from bench.progname import PROG
from bench.report import diff as diff_report
from bench.report import flat
from bench.report import sweep as sweep_report
from bench.report.flat import Metric
from bench.studies import baselines

EXIT_OK = 0
EXIT_PAST_LIMIT = 1
EXIT_USAGE = 2
#: The machine facts that must match (the run JSON's ``environment``).
MACHINE_KEYS = ("cpu_model", "cpu_count", "memory_bytes")
#: One --fail limit: metric, a sign, a percentage.
LIMIT_PATTERN = re.compile(r"(?P<metric>[a-z0-9.]+):(?P<sign>[+-])(?P<pct>\d+(\.\d+)?)%")


@dataclass(frozen=True)
class Limit:
    """``p99:+10%``: NEW / BASE at most 1.10; ``deliveries:-5%``: at least 0.95."""

    metric: Metric
    percent: float  #: signed: + a ceiling above BASE, - a floor below it

    def allows(self, ratio: float) -> bool:
        bound = 1 + self.percent / 100
        return ratio <= bound if self.percent >= 0 else ratio >= bound

    def __str__(self) -> str:
        return f"{self.metric.name}:{self.percent:+g}%"


def parse_limits(text: str) -> list[Limit]:
    """``p99:+10%,deliveries:-5%`` -> limits; ValueError says the syntax."""
    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        m = LIMIT_PATTERN.fullmatch(part)
        if m is None or m["metric"] not in flat.METRIC_NAMES:
            raise argparse.ArgumentTypeError(
                f"--fail {part!r}: expected METRIC:+N% or METRIC:-N% with METRIC one of "
                f"{', '.join(flat.METRIC_NAMES)} (e.g. p99:+10%,deliveries:-5%)"
            )
        sign = 1.0 if m["sign"] == "+" else -1.0
        out.append(Limit(flat.METRIC_NAMES[m["metric"]], sign * float(m["pct"])))
    if not out:
        raise argparse.ArgumentTypeError("--fail needs at least one METRIC:+N% or METRIC:-N%")
    return out


def past_limits(pairs: Sequence[diff_report.Pair], limits: Sequence[Limit]) -> list[str]:
    """One line per (point, limit) where NEW is past the limit; points one side lacks are not judged."""
    out = []
    for pair in pairs:
        for limit in limits:
            a, b = diff_report.value(pair.base, limit.metric), diff_report.value(pair.new, limit.metric)
            r = diff_report.ratio(a, b)
            if r is not None and not limit.allows(r):
                change = "from 0" if a == 0 else f"{100 * (r - 1):+.1f}%"
                out.append(
                    f"{pair.series} {pair.clients} clients: {limit.metric.name} {change} "
                    f"({diff_report.cell(pair, limit.metric)}), limit {limit}"
                )
    return out


def machine(series: Sequence[sweep_report.SeriesData]) -> dict[str, object]:
    """The machine the first run of ``series`` ran on."""
    env: dict[str, object] = next((dict(r["environment"]) for s in series for r in s.runs), {})
    return {k: env.get(k) for k in MACHINE_KEYS}


def check_machines(base: Sequence[sweep_report.SeriesData], new: Sequence[sweep_report.SeriesData]) -> None:
    a, b = machine(base), machine(new)
    differ = [f"{k} {a[k]!r} vs {b[k]!r}" for k in MACHINE_KEYS if a[k] != b[k]]
    if differ:
        raise cli.UsageError(
            f"BASE and NEW ran on different machines ({'; '.join(differ)}): their numbers are not comparable "
            "(--force compares them anyway)"
        )


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Compare two results point by point (series x client count): p50/p95/p99/p99.9/max latency, "
        "deliveries/s, faults and server CPU, each as BASE → NEW (NEW/BASE), as markdown on stdout. Runs nothing."
    )
    parser.epilog = (
        "Exit codes: 0 within the --fail limits (or none given); 1 a point is past a limit; 2 a usage error "
        "(unreadable results, no point in common, different machines without --force, bad --fail). "
        f"Examples: `{PROG} diff reports/A reports/B`; `{PROG} save reports/latest main` then "
        f"`{PROG} diff --baseline main reports/latest --fail p99:+10%,deliveries:-5% --out diff/`. "
        "Each point is one run: two identical sweeps can differ by 8% at p99, so keep --fail limits wider "
        "than that, and measure with repeats (compare --repeat N) before deciding."
    )
    parser.add_argument(
        "dirs", nargs="+", metavar="DIR", help="BASE NEW (two results directories), or NEW alone with --baseline"
    )
    parser.add_argument("--baseline", metavar="NAME", help="BASE is the saved baseline NAME (`save DIR NAME`)")
    parser.add_argument("--baselines-root", default=baselines.DEFAULT_ROOT, help="where named baselines are kept")
    parser.add_argument(
        "--fail",
        type=parse_limits,
        metavar="LIMITS",
        help="exit 1 past these limits: comma-separated METRIC:+N%% (NEW at most N%% above BASE) or METRIC:-N%% "
        f"(at most N%% below); METRIC: {', '.join(flat.METRIC_NAMES)}",
    )
    parser.add_argument("--force", action="store_true", help="compare results from different machines")
    parser.add_argument("--out", metavar="DIR", help="also write diff.md and diff.png (BASE dashed, NEW solid) here")


def _inputs(args: argparse.Namespace) -> tuple[Path, Path]:
    dirs: list[str] = args.dirs
    if args.baseline:
        if len(dirs) != 1:
            raise cli.UsageError("with --baseline NAME give one directory: NEW")
        try:
            return baselines.resolve(args.baselines_root, args.baseline), Path(dirs[0])
        except baselines.BaselineError as exc:
            raise cli.UsageError(str(exc)) from None
    if len(dirs) != 2:
        raise cli.UsageError("give two directories, BASE and NEW (or --baseline NAME and NEW)")
    return Path(dirs[0]), Path(dirs[1])


def run(args: argparse.Namespace) -> int:
    base_dir, new_dir = _inputs(args)
    try:
        base, new = sweep_report.load_series(base_dir), sweep_report.load_series(new_dir)
    except sweep_report.ReportError as exc:
        raise cli.UsageError(str(exc)) from None
    if not args.force:
        check_machines(base, new)
    pairs = diff_report.pair_points(base, new)
    if not any(p.base is not None and p.new is not None for p in pairs):
        raise cli.UsageError(f"{base_dir} and {new_dir} have no point (series and client count) in common")
    failures = past_limits(pairs, args.fail or [])
    names = (f"baseline {args.baseline}" if args.baseline else str(base_dir), str(new_dir))
    chart = None
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        chart = diff_report.draw(base, new, out, names).name
        (out / diff_report.DIFF_MD).write_text(diff_report.document(pairs, names, failures, chart), encoding="utf-8")
    sys.stdout.write(diff_report.document(pairs, names, failures, None))
    if args.out:
        print(f"diff: {Path(args.out) / diff_report.DIFF_MD}", file=sys.stderr)
    if failures:
        print(f"{len(failures)} past the --fail limits", file=sys.stderr)
        return EXIT_PAST_LIMIT
    return EXIT_OK
