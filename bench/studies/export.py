"""``python -m bench export DIR --csv [FILE]``: every point of a results
directory as one flat CSV row, for spreadsheets.

DIR is what ``sweep``, ``run``, ``capacity`` or ``compare`` wrote (series
directories with ``index.json``, or one series directory itself).  One row
per point: series, client count, every latency percentile, the counts
(connections, messages, deliveries), the integrity counters, the server's
and harness's resources, every run parameter, the machine; a point that has
no result gets a row with its error.  Columns: :mod:`bench.report.flat`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench import cli
from bench.progname import PROG
from bench.report import flat
from bench.report import sweep as sweep_report
from bench.report.flat import Row

#: --csv without a file name, or the default: standard output.
STDOUT = "-"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Write every point of a results directory as one flat CSV row (series, clients, all percentiles, counts, "
        "deliveries, integrity counters, resources, parameters), for spreadsheets. Runs nothing."
    )
    parser.epilog = (
        f"Example: `{PROG} export reports/latest --csv points.csv`; "
        f"`{PROG} export reports/latest | column -s, -t`. Latencies are in microseconds (columns ending _us)."
    )
    parser.add_argument("dir", metavar="DIR", help="a results directory, e.g. reports/latest")
    parser.add_argument(
        "--csv",
        nargs="?",
        const=STDOUT,
        default=STDOUT,
        metavar="FILE",
        help="write CSV to FILE ('-' or no FILE: standard output; CSV is the one format)",
    )


def rows(directory: Path) -> list[Row]:
    """Every point under ``directory``, series by series, by client count."""
    out: list[Row] = []
    for s in sweep_report.load_series(directory):
        out += [flat.point_row(s.label, run, file) for run, file in zip(s.runs, s.files, strict=True)]
        out += [flat.failed_row(s.label, entry) for entry in s.failed]
    return out


def run(args: argparse.Namespace) -> int:
    try:
        found = rows(Path(args.dir))
    except sweep_report.ReportError as exc:
        raise cli.UsageError(str(exc)) from None
    if args.csv == STDOUT:
        flat.write_csv(found, sys.stdout)
        return 0
    path = Path(args.csv)
    try:
        with path.open("w", encoding="utf-8", newline="") as f:
            flat.write_csv(found, f)
    except OSError as exc:
        raise cli.UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    print(f"{len(found)} rows: {path}", file=sys.stderr)
    return 0
