"""``python -m bench report DIR``: redraw a report from its saved JSON, running
nothing.  A comparison directory (``compare.json``) gets COMPARE.md and its
charts again; any other gets the sweep report (``report.md``, ``report.html``,
the charts; with the capacity section when ``capacity.json`` is there)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench import cli
from bench.progname import PROG
from bench.report import compare, sweep
from bench.results import COMPARE_JSON, ResultsError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Redraw the charts and rewrite report.md / report.html (or, for a comparison, COMPARE.md) from saved "
        f"results JSON, without running anything. DIR is a directory written by `{PROG} sweep`, `run`, "
        "`capacity` or `compare`."
    )
    parser.add_argument("dir", metavar="DIR", help="a results directory, e.g. reports/latest")
    parser.add_argument("--out", help="write the report and charts here instead of DIR (not for a comparison)")
    parser.add_argument("--title", default=sweep.DEFAULT_TITLE, help="report title (sweep reports)")


def run(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    try:
        if (directory / COMPARE_JSON).is_file():
            if args.out:
                raise cli.UsageError("--out does not apply to a comparison: it is redrawn in place")
            written = [compare.write_report(directory)]
        else:
            written = list(sweep.build_report(directory, args.out, args.title).values())
    except (sweep.ReportError, ResultsError) as exc:
        raise cli.UsageError(str(exc)) from exc
    for path in written:
        print(path)
    return 0
