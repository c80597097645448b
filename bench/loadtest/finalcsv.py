"""The last word in Locust's CSV files: the final statistics.

Locust rewrites ``PREFIX_stats.csv``, ``PREFIX_failures.csv`` and
``PREFIX_exceptions.csv`` once a second from a background greenlet, and its
last rewrite comes before the test stops, so the files could count fewer
``FANOUT`` deliveries than the final table Locust prints (which comes from
the statistics at exit), or miss the failures of the last second (a short
run against a server that refuses every connection: an empty failures file
beside an error report of three).  On Locust's ``quit`` event (after those
tables are printed, when the statistics are final) this module renders the
three files with Locust's own :class:`locust.stats.StatsCSV` and, once Locust
has closed its CSV files, writes them over them: the CSV files then agree
with the final tables row for row.

Skipped where no ``--csv`` is given, on a worker (which writes no CSV) and
with ``--json-file`` (Locust resets its statistics while writing that file).
"""

from __future__ import annotations

import atexit
import csv
import io
from pathlib import Path
from typing import Any

from locust.runners import WorkerRunner
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV


def csv_texts(environment: Any) -> dict[str, str]:
    """The three files' texts (with headers) as Locust writes them, by the
    name after ``PREFIX_``: ``stats``, ``failures``, ``exceptions``."""
    writer = StatsCSV(environment, PERCENTILES_TO_REPORT)
    texts: dict[str, str] = {}
    for name, write in (
        ("stats", writer.requests_csv),
        ("failures", writer.failures_csv),
        ("exceptions", writer.exceptions_csv),
    ):
        out = io.StringIO()
        write(csv.writer(out))
        texts[name] = out.getvalue()
    return texts


def install(environment: Any) -> None:
    """Rewrite the CSV files with the final statistics when Locust quits."""
    options = environment.parsed_options
    prefix = getattr(options, "csv_prefix", None)
    if not prefix or getattr(options, "json_file", None) or isinstance(environment.runner, WorkerRunner):
        return

    def on_quit(**_kwargs: Any) -> None:
        for name, text in csv_texts(environment).items():
            # Locust closes (and flushes) its own handles on the files after
            # the quit event, so the final rows are written at interpreter exit.
            atexit.register(Path(f"{prefix}_{name}.csv").write_text, text, encoding="utf-8", newline="")

    environment.events.quit.add_listener(on_quit)
