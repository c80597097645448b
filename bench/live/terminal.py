"""The terminal's live view: one row per interval while a run goes.

On a terminal (``--live table``, what ``auto`` picks when stderr is one) a
``rich`` live display redraws a compact table of the latest intervals with the
run's status line under it; piped (``lines``) each interval is one plain line,
so a log or CI output keeps them all.  Both go to stderr: stdout stays the
summary lines and the report's paths.
"""

from __future__ import annotations

import sys
from collections import deque
from typing import TextIO

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from bench.report.fmt import MISSING, ms, num
from bench.results.schema import IntervalSection, RunDocument
from bench.swarm.series import IntervalView, RunInfo

#: Rows the table keeps on screen: the latest intervals.
TABLE_ROWS = 12
#: Redraws per second of the live table (rich's refresh).
REFRESH_PER_S = 4
#: --live choices.
MODES = ("auto", "table", "lines", "off")


def faults(section: IntervalSection) -> int:
    """The faults an interval shows while the run goes (lost is known at the end)."""
    return section["duplicated"] + section["reordered"] + section["corrupted"] + (section["lost"] or 0)


def cells(section: IntervalSection) -> list[str]:
    """An interval's row: time, phase, deliveries/s, owed/s, p50, p99, max, faults, read lag, server CPU."""
    lat = section["latency_us"]
    measured = lat["count"] > 0
    lag = section["receive_lag_us"]
    length = section["length_s"] or 1.0
    return [
        f"{section['start_s']:.1f}",
        section["phase"],
        num(section["per_s"]),
        num(section["owed"] / length),
        ms(lat["p50_us"]) if measured else MISSING,
        ms(lat["p99_us"]) if measured else MISSING,
        ms(lat["max_us"]) if measured else MISSING,
        str(faults(section)),
        ms(lag["p99_us"]) if lag else MISSING,
        num(section["server_cpu_percent"]),
    ]


HEADER = ("t s", "phase", "deliv/s", "owed/s", "p50 ms", "p99 ms", "max ms", "faults", "lag p99", "CPU%")


class LineView:
    """One plain line per interval (a pipe, a log)."""

    def __init__(self, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.title = ""

    def run_started(self, run: RunInfo) -> None:
        self.title = run.title

    def interval(self, view: IntervalView) -> str | None:
        c = cells(view.section)
        self.stream.write(
            f"[{self.title}] t={c[0]}s {c[1]:8} {c[2]:>9} deliveries/s (owed {c[3]})  p50 {c[4]} p99 {c[5]} "
            f"max {c[6]} ms  faults {c[7]}  read lag p99 {c[8]} ms  server CPU {c[9]}%\n"
        )
        self.stream.flush()
        return None

    def status(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    def run_finished(self, doc: RunDocument) -> None:
        pass


class TableView:
    """A ``rich`` live table of the latest intervals, the status line under it."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.rows: deque[list[str]] = deque(maxlen=TABLE_ROWS)
        self.title = ""
        self.status_line = ""
        self.live: Live | None = None

    def _render(self) -> Group:
        # No padding (the box's spaces part the columns): ten columns fit 80 characters.
        table = Table(title=self.title, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 0))
        for name in HEADER:
            table.add_column(name, justify="left" if name == "phase" else "right", no_wrap=True, min_width=len(name))
        for row in self.rows:
            style = "red" if row[7] != "0" else ("dim" if row[1] == "warmup" else None)
            table.add_row(*row, style=style)
        return Group(table, Text(self.status_line, style="dim"))

    def _redraw(self) -> None:
        if self.live is None:  # the first status line of a run: its display begins
            self.live = Live(self._render(), console=self.console, refresh_per_second=REFRESH_PER_S)
            self.live.start()
        else:
            self.live.update(self._render())

    def run_started(self, run: RunInfo) -> None:
        self.title = f"{run.title}: every {run.interval_s:g} s (deliveries by arrival)"
        self.rows.clear()
        self._redraw()

    def interval(self, view: IntervalView) -> str | None:
        self.rows.append(cells(view.section))
        self._redraw()
        return None

    def status(self, line: str) -> None:
        self.status_line = line
        self._redraw()

    def run_finished(self, doc: RunDocument) -> None:
        self.close()

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
        self.rows.clear()
        self.title = self.status_line = ""


def terminal_view(mode: str, stream: TextIO = sys.stderr) -> LineView | TableView | None:
    """The view ``--live MODE`` asks for (None: off)."""
    if mode == "off":
        return None
    if mode == "auto":
        mode = "table" if stream.isatty() else "lines"
    return TableView() if mode == "table" else LineView(stream)
