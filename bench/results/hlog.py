"""A run's intervals as an HdrHistogram interval log (``.hlog``).

The format HdrHistogram's own tools read (``HistogramLogReader`` in Java and
in the ``hdrhistogram`` Python package, ``HistogramLogProcessor``,
HdrHistogramVisualizer)::

    #[Histogram log format version 1.3]
    #[StartTime: 1767225600.000 (seconds since epoch), 2026-01-01T00:00:00+00:00]
    #[BaseTime: 1767225600.000 (seconds since epoch)]
    "StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"
    0.000,1.000,2.769,HISTFAAAAEV42pNpmSz...
    Tag=path=cross,0.000,1.000,2.769,HISTFAAA...

One untagged line per interval holds every delivery that arrived in it;
with labels, one tagged line per label and interval follows (the tag is the
label key with its commas written as ``;``: a tag cannot hold a comma).
Timestamps are seconds after the first intended send (``BaseTime``); values
are microseconds, and ``Interval_Max`` is in milliseconds (the values
divided by 1000, as HdrHistogram's tools divide nanoseconds by 10^6).

It is written beside the run's JSON from the JSON's ``intervals``
(:func:`write_hlog`), so the JSON stays the one source of the figures.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path

from bench.measure.stats import LatencyHistogram
from bench.results.schema import Histogram, IntervalSection, RunDocument

#: The interval log format written (HdrHistogram's, with tags).
LOG_FORMAT_VERSION = "1.3"
#: Values are microseconds: ``Interval_Max`` is shown in milliseconds.
MAX_VALUE_UNIT_RATIO = 1000.0


def hlog_name(json_name: str) -> str:
    """``run-c00100.json`` -> ``run-c00100.hlog``."""
    return json_name.removesuffix(".json") + ".hlog"


def tag_of(label: str) -> str:
    """A label key as an interval-log tag (no commas)."""
    return label.replace(",", ";")


def _payload(h: Histogram | None) -> tuple[str, float]:
    """The compressed histogram and its max in ms (an empty one for an empty interval)."""
    hist = LatencyHistogram.decode(h["data"], h["clamped"]) if h is not None and h["data"] else LatencyHistogram()
    return hist.encoded_always(), hist.max / MAX_VALUE_UNIT_RATIO


def interval_log(base_unix_s: float, intervals: Sequence[IntervalSection], comment: str) -> str:
    """An interval log: ``intervals`` (their ``start_s``, ``length_s``,
    ``histogram`` and ``labels``) after a header whose ``BaseTime`` is
    ``base_unix_s``; the swarm's and the Locust path's."""
    when = dt.datetime.fromtimestamp(base_unix_s, dt.UTC).isoformat(timespec="milliseconds")
    lines = [
        f"#[Histogram log format version {LOG_FORMAT_VERSION}]",
        f"#[StartTime: {base_unix_s:.3f} (seconds since epoch), {when}]",
        f"#[BaseTime: {base_unix_s:.3f} (seconds since epoch)]",
        f"#[{comment}]",
        '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"',
    ]
    for section in intervals:
        start, length = section["start_s"], section["length_s"]
        payload, top = _payload(section.get("histogram"))
        lines.append(f"{start:.3f},{length:.3f},{top:.3f},{payload}")
        for part in section.get("labels", []):
            payload, top = _payload(part.get("histogram"))
            lines.append(f"Tag={tag_of(part['label'])},{start:.3f},{length:.3f},{top:.3f},{payload}")
    return "\n".join(lines) + "\n"


def hlog_text(doc: RunDocument) -> str | None:
    """The interval log of ``doc`` (None when it has no intervals)."""
    series = doc.get("intervals")
    if series is None:
        return None
    comment = f"chatbench run {doc['run_id']}: delivery latency in microseconds, by arrival interval"
    return interval_log(series["origin_unix_s"], series["intervals"], comment)


def write_hlog(path: str | os.PathLike[str], doc: RunDocument) -> Path | None:
    """Write ``doc``'s interval log to ``path`` (atomically); None when it has no intervals."""
    text = hlog_text(doc)
    return None if text is None else write_text(path, text)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write an interval log's text to ``path`` atomically."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(text, encoding="ascii")
    tmp.replace(p)
    return p
