"""All rendering of results: markdown, HTML and every chart.

- :mod:`bench.report.sweep`: the sweep report (``report.md``, ``report.html``)
  of one or more series, with the capacity section when there is one; its
  warnings in plain words in :mod:`bench.report.sweepwarnings`;
- :mod:`bench.report.capacity`: the capacity search's section and ``capacity.md``;
- :mod:`bench.report.compare`: ``compare.json`` and ``COMPARE.md`` of a comparison;
- :mod:`bench.report.plots`: every PNG (the only module that imports matplotlib);
- :mod:`bench.report.fmt`: number formats and the little markdown, shared by all;
- :mod:`bench.report.runline`: the one line printed per run;
- :mod:`bench.report.command`: ``python -m bench report DIR``.

The sweep report's names are re-exported here (``report.build_report``,
``report.load_series``, ...).
"""

from __future__ import annotations

from bench.report.sweep import (
    DEFAULT_FANOUT,
    DEFAULT_TITLE,
    REPORT_HTML,
    REPORT_MD,
    ReportError,
    SeriesData,
    build_report,
    find_indexes,
    load_series,
    render_html,
    render_markdown,
)
from bench.report.sweepwarnings import warnings

__all__ = [
    "DEFAULT_FANOUT",
    "DEFAULT_TITLE",
    "REPORT_HTML",
    "REPORT_MD",
    "ReportError",
    "SeriesData",
    "build_report",
    "find_indexes",
    "load_series",
    "render_html",
    "render_markdown",
    "warnings",
]
