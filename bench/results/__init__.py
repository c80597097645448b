"""Result documents: their schema (:mod:`bench.results.schema`, prose in
``docs/results.md``), their files (:mod:`bench.results.store`: one JSON per
run, one index per run set) and the machine they were measured on
(:mod:`bench.results.machine`).

Chart and report code reads runs through :func:`load_run` /
:func:`load_index`, so a schema change is caught here.
"""

from __future__ import annotations

from bench.results.schema import CAPACITY_JSON, COMPARE_JSON, INDEX_KIND, INDEX_NAME, RUN_KIND, SCHEMA_VERSION
from bench.results.store import (
    ResultsError,
    SeriesWriter,
    load_capacity,
    load_compare,
    load_index,
    load_run,
    load_runs,
    run_histogram,
    write_json,
)

__all__ = [
    "CAPACITY_JSON",
    "COMPARE_JSON",
    "INDEX_KIND",
    "INDEX_NAME",
    "RUN_KIND",
    "SCHEMA_VERSION",
    "ResultsError",
    "SeriesWriter",
    "load_capacity",
    "load_compare",
    "load_index",
    "load_run",
    "load_runs",
    "run_histogram",
    "write_json",
]
