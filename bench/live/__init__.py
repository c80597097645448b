"""A run shown and exported while it goes, interval by interval.

Every output is an observer of the run's interval series
(:class:`bench.swarm.series.IntervalObserver`): it is told when a run's
traffic starts, gets each interval as soon as every worker has closed it
(merged exactly, :mod:`bench.swarm.series`), and the run's document at its
end.  One module each:

* :mod:`~bench.live.terminal` -- the terminal's table (``rich``) or plain lines (``--live``);
* :mod:`~bench.live.web` -- a page with live charts (``--web PORT``);
* :mod:`~bench.live.jsonl` -- JSON lines (``--out-jsonl FILE``);
* :mod:`~bench.live.prom` -- a Prometheus endpoint (``--prometheus PORT``);
* :mod:`~bench.live.otlp` -- OpenTelemetry metrics over OTLP/HTTP (``--otlp URL``).

:func:`open_outputs` builds them from the command line (``cli.live_options``)
with the ``--threshold`` list, as the :class:`~bench.swarm.Outputs` a run
takes; each is imported only when asked for.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from types import TracebackType
from typing import Any

from bench.measure.thresholds import Threshold
from bench.swarm import Outputs
from bench.swarm.series import IntervalObserver


class OutputError(Exception):
    """An output cannot be opened (a port in use, a file that cannot be written)."""


class LiveOutputs:
    """The outputs of a command's runs, open until :meth:`close` (a context manager)."""

    def __init__(self) -> None:
        self.observers: list[IntervalObserver] = []
        self.status: Callable[[str], None] | None = None
        self.thresholds: list[Threshold] = []
        self._closers: list[Callable[[], None]] = []

    @property
    def outputs(self) -> Outputs:
        return Outputs(self.observers, self.thresholds, self.status)

    def add(self, observer: Any, announce: str | None = None) -> None:
        self.observers.append(observer)
        close = getattr(observer, "close", None)
        if close is not None:
            self._closers.append(close)
        if announce:
            print(announce, file=sys.stderr, flush=True)

    def close(self) -> None:
        while self._closers:
            self._closers.pop()()

    def __enter__(self) -> LiveOutputs:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def open_outputs(args: argparse.Namespace) -> LiveOutputs:
    """The outputs ``args`` ask for (``cli.live_options``); OutputError when one cannot open."""
    get = args.__dict__.get
    live = LiveOutputs()
    live.thresholds = list(get("threshold") or [])
    try:
        _terminal(live, "off" if get("quiet") else get("live", "auto"))
        what = "--web"
        if get("web") is not None:
            from bench.live.web import WebOutput

            what = f"--web on {get('web_host', '127.0.0.1')}:{args.web}"
            web = WebOutput(args.web, get("web_host", "127.0.0.1"))
            live.add(web, f"live view: {web.url}")
        if get("out_jsonl"):
            from bench.live.jsonl import JsonLines

            what = f"--out-jsonl {args.out_jsonl}"
            live.add(JsonLines(args.out_jsonl))
        if get("prometheus") is not None:
            from bench.live.prom import PrometheusOutput

            what = f"--prometheus on {get('prometheus_host', '127.0.0.1')}:{args.prometheus}"
            prom = PrometheusOutput(args.prometheus, get("prometheus_host", "127.0.0.1"))
            live.add(prom, f"prometheus metrics: {prom.url}")
        if get("otlp"):
            from bench.live.otlp import OtlpOutput

            what = "--otlp"
            live.add(OtlpOutput(args.otlp), f"OTLP metrics to {args.otlp}")
    except OSError as exc:
        live.close()
        raise OutputError(f"cannot open {what}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        live.close()
        raise OutputError(str(exc)) from exc
    return live


def _terminal(live: LiveOutputs, mode: str) -> None:
    from bench.live.terminal import terminal_view

    view = terminal_view(mode)
    if view is not None:
        live.add(view)
        live.status = view.status
