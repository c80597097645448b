"""Reading and writing swarm results: one JSON document per run, one index per
run set (a sweep, or a single run).  The schema is described in
``docs/results.md``; chart and report scripts should read runs through
:func:`load_run` / :func:`load_index` so a schema change is caught here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bench.measure.stats import LatencyHistogram

#: Bumped on any incompatible change to the documents below.
SCHEMA_VERSION = 1
RUN_KIND = "chatbench.swarm.run"
INDEX_KIND = "chatbench.swarm.index"
INDEX_NAME = "index.json"


class ResultsError(Exception):
    """A results file is missing, not JSON, or not a schema this code reads."""


def _load(path: str | os.PathLike[str], kind: str) -> dict[str, Any]:
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ResultsError(f"cannot read {p}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{p} is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("kind") != kind:
        raise ResultsError(f"{p} is not a {kind} document")
    version = doc.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ResultsError(f"{p} has schema_version {version!r}; this code reads {SCHEMA_VERSION}")
    return doc


def load_run(path: str | os.PathLike[str]) -> dict[str, Any]:
    """One run document (``kind == "chatbench.swarm.run"``), validated."""
    return _load(path, RUN_KIND)


def load_index(path: str | os.PathLike[str]) -> dict[str, Any]:
    """An index document; ``path`` may be the file or its directory."""
    p = Path(path)
    if p.is_dir():
        p = p / INDEX_NAME
    return _load(p, INDEX_KIND)


def load_runs(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every run an index lists that completed, in index order."""
    p = Path(path)
    index_file = p / INDEX_NAME if p.is_dir() else p
    index = load_index(index_file)
    return [load_run(index_file.parent / entry["file"]) for entry in index["runs"] if entry.get("file")]


def run_histogram(run: dict[str, Any]) -> LatencyHistogram:
    """The run's merged latency histogram (microseconds), decoded."""
    h = run["histogram"]
    return LatencyHistogram.decode(h["data"], int(h.get("clamped", 0)))


def write_json(path: str | os.PathLike[str], doc: dict[str, Any]) -> Path:
    """Write atomically (temp file + rename), so a reader never sees half a file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    tmp.replace(p)
    return p
