"""Named baselines: ``python -m bench save DIR NAME`` keeps a results
directory's JSON as ``reports/baselines/NAME/``, and ``python -m bench diff
--baseline NAME NEW`` compares a new result against it.

The design is a plain directory per name, a copy of the results' JSON files
(``index.json``, the run JSONs, ``capacity.json``, ``compare.json``) in
their layout: any tool that reads a results directory reads a baseline, and
``git add -f reports/baselines/NAME`` shares one (the directory is ignored,
so ``git status`` stays clean after a save).  Charts and reports are not
copied (``python -m bench report`` redraws them).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

from bench import cli
from bench.progname import PROG
from bench.report import sweep as sweep_report

#: Where named baselines live, under the reports root.
DEFAULT_ROOT = "reports/baselines"
#: A name is one path component a shell need not quote.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class BaselineError(Exception):
    """No such baseline, a bad name, or nothing to save; the message says why."""


def baseline_dir(root: str | Path, name: str) -> Path:
    if not NAME_PATTERN.fullmatch(name):
        raise BaselineError(f"baseline name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)")
    return Path(root) / name


def resolve(root: str | Path, name: str) -> Path:
    """The directory of the saved baseline ``name``."""
    path = baseline_dir(root, name)
    if not path.is_dir():
        saved = sorted(p.name for p in Path(root).glob("*") if p.is_dir()) if Path(root).is_dir() else []
        known = f"saved: {', '.join(saved)}" if saved else f"none saved under {root} yet"
        raise BaselineError(f"no baseline named {name!r} ({known}; `{cli.PROG} save DIR NAME` makes one)")
    return path


def save(source: str | Path, root: str | Path, name: str, *, replace: bool = False) -> Path:
    """Copy the results JSON under ``source`` to the baseline ``name``."""
    src = Path(source)
    sweep_report.load_series(src)  # a results directory with runs (ReportError otherwise)
    dest = baseline_dir(root, name)
    if dest.exists():
        if not replace:
            raise BaselineError(f"baseline {name!r} exists ({dest}); --replace overwrites it")
        shutil.rmtree(dest)
    for file in sorted(src.rglob("*.json")):
        target = dest / file.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, target)
    return dest


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Keep the results JSON of DIR (what sweep, run, capacity or compare wrote) as the named baseline NAME, "
        f"under {DEFAULT_ROOT}/NAME, for `diff --baseline NAME NEW`. Runs nothing."
    )
    parser.epilog = (
        f"Example: `{PROG} save reports/latest before-flusher`, then after a change "
        f"`{PROG} sweep && {PROG} diff --baseline before-flusher reports/latest`."
    )
    parser.add_argument("dir", metavar="DIR", help="a results directory, e.g. reports/latest")
    parser.add_argument("name", metavar="NAME", help="the baseline's name (letters, digits, '.', '_', '-')")
    parser.add_argument("--baselines-root", default=DEFAULT_ROOT, help="where named baselines are kept")
    parser.add_argument("--replace", action="store_true", help="overwrite a baseline of that name")


def run(args: argparse.Namespace) -> int:
    try:
        dest = save(args.dir, args.baselines_root, args.name, replace=args.replace)
    except (BaselineError, sweep_report.ReportError) as exc:
        raise cli.UsageError(str(exc)) from None
    print(f"baseline {args.name}: {dest}", file=sys.stderr)
    return 0
