"""The last word in Locust's ``PREFIX_stats.csv``: the final statistics.

Locust rewrites ``PREFIX_stats.csv`` once a second from a background
greenlet, and its last rewrite comes before the test stops, so the file could
count fewer ``FANOUT`` deliveries than the final table Locust prints (which
comes from the statistics at exit).  On Locust's ``quit`` event (after that
table is printed, when the statistics are final) this module renders the
request rows with Locust's own :class:`locust.stats.StatsCSV` and, once Locust
has closed its CSV files, writes them over the file: the CSV then agrees with
the final table row for row.

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


def requests_csv_text(environment: Any) -> str:
    """The request rows (with header) as Locust writes ``PREFIX_stats.csv``."""
    out = io.StringIO()
    StatsCSV(environment, PERCENTILES_TO_REPORT).requests_csv(csv.writer(out))
    return out.getvalue()


def install(environment: Any) -> None:
    """Rewrite the stats CSV with the final statistics when Locust quits."""
    options = environment.parsed_options
    prefix = getattr(options, "csv_prefix", None)
    if not prefix or getattr(options, "json_file", None) or isinstance(environment.runner, WorkerRunner):
        return
    path = Path(f"{prefix}_stats.csv")

    def on_quit(**_kwargs: Any) -> None:
        text = requests_csv_text(environment)
        # Locust closes (and flushes) its own handle on the file after the
        # quit event, so the final rows are written at interpreter exit.
        atexit.register(path.write_text, text, encoding="utf-8", newline="")

    environment.events.quit.add_listener(on_quit)
