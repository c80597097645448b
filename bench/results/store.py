"""Reading and writing result files: atomic JSON, validated loaders, the one
index writer (:class:`SeriesWriter`) and the report directories with their
``latest`` links.

Every run set the harness writes (a sweep, one point, a capacity search, one
target of a comparison) goes through :class:`SeriesWriter`, so there is one
place that knows the layout of ``index.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from bench.measure.stats import LatencyHistogram
from bench.results.hlog import hlog_name, write_hlog
from bench.results.machine import environment
from bench.results.schema import (
    CAPACITY_JSON,
    CAPACITY_KIND,
    CAPACITY_SCHEMA_VERSION,
    COMPARE_JSON,
    COMPARE_KIND,
    INDEX_KIND,
    INDEX_NAME,
    READABLE_SCHEMA_VERSIONS,
    RUN_KIND,
    SCHEMA_VERSION,
    CapacityDocument,
    CompareDocument,
    IndexDocument,
    IndexEntry,
    RunDocument,
    SeriesParameters,
)
from bench.results.summary import run_summary


class ResultsError(Exception):
    """A results file is missing, not JSON, or not a schema this code reads."""


# ---------------------------------------------------------------------------
# JSON files
# ---------------------------------------------------------------------------


def read_json(
    path: str | os.PathLike[str], kind: str, versions: tuple[int, ...] = READABLE_SCHEMA_VERSIONS
) -> dict[str, Any]:
    """A JSON object of ``kind`` and one of ``versions``; ResultsError otherwise.
    (``dict[str, Any]``: json.loads output, before the loaders type it.)"""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ResultsError(f"cannot read {p}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{p} is not JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("kind") != kind:
        raise ResultsError(f"{p} is not a {kind} document")
    found = doc.get("schema_version")
    if found not in versions:
        readable = " or ".join(map(str, versions))
        raise ResultsError(f"{p} has schema_version {found!r}; this code reads {readable}")
    return doc


def write_json(path: str | os.PathLike[str], doc: object) -> Path:
    """Write atomically (temp file + rename), so a reader never sees half a file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    tmp.replace(p)
    return p


def load_run(path: str | os.PathLike[str]) -> RunDocument:
    """One run document (``kind == "chatbench.swarm.run"``), validated;
    one of schema version 1 upgraded to the current form (:func:`upgrade_run`)."""
    return upgrade_run(read_json(path, RUN_KIND))


#: Version 1's cluster keys and the label each became.
_V1_PATHS = (
    ("same", "latency_same_node_us", "expected_same_node"),
    ("cross", "latency_cross_node_us", "expected_cross_node"),
)


def upgrade_run(doc: dict[str, Any]) -> RunDocument:
    """A run document as the current schema has it.  Version 1 kept a
    cluster's two paths as keys of their own; they become the ``labels``
    ``path=same`` and ``path=cross`` (without histograms: version 1 kept
    none per path)."""
    if doc.get("schema_version") == 1:
        doc = dict(doc)
        deliveries = dict(doc.get("deliveries") or {})
        sections = []
        for value, latency_key, expected_key in _V1_PATHS:
            latency = doc.pop(latency_key, None)
            expected = deliveries.pop(expected_key, None)
            if latency is not None:
                sections.append(
                    {
                        "label": f"path={value}",
                        "values": {"path": value},
                        "expected": expected or 0,
                        "delivered": latency.get("count", 0),
                        "latency_us": latency,
                        "integrity": {"lost": 0, "duplicated": 0, "reordered": 0, "corrupted": 0, "faults": 0},
                    }
                )
        doc["deliveries"] = deliveries
        doc["labels"] = sections
        doc["schema_version"] = SCHEMA_VERSION
    return cast(RunDocument, doc)


def load_index(path: str | os.PathLike[str]) -> IndexDocument:
    """An index document; ``path`` may be the file or its directory."""
    p = Path(path)
    if p.is_dir():
        p = p / INDEX_NAME
    return cast(IndexDocument, read_json(p, INDEX_KIND))


def load_runs(path: str | os.PathLike[str]) -> list[RunDocument]:
    """Every run an index lists that completed, in index order."""
    p = Path(path)
    index_file = p / INDEX_NAME if p.is_dir() else p
    index = load_index(index_file)
    files = [entry["file"] for entry in index["runs"]]
    return [load_run(index_file.parent / file) for file in files if file]


def load_capacity(directory: str | os.PathLike[str]) -> CapacityDocument:
    """``capacity.json`` in ``directory``, validated."""
    return cast(CapacityDocument, read_json(Path(directory) / CAPACITY_JSON, CAPACITY_KIND, (CAPACITY_SCHEMA_VERSION,)))


def load_compare(directory: str | os.PathLike[str]) -> CompareDocument:
    """``compare.json`` in ``directory`` (it carries no schema_version: checked by kind and keys)."""
    p = Path(directory) / COMPARE_JSON
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ResultsError(f"no readable {COMPARE_JSON} in {directory}: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("kind") != COMPARE_KIND or "meta" not in doc or "series" not in doc:
        raise ResultsError(f"{p} is not a {COMPARE_KIND} document")
    return cast(CompareDocument, doc)


def run_histogram(run: RunDocument) -> LatencyHistogram:
    """The run's merged latency histogram (microseconds), decoded."""
    h = run["histogram"]
    return LatencyHistogram.decode(h["data"], int(h.get("clamped", 0)))


# ---------------------------------------------------------------------------
# one series = one index + its run files
# ---------------------------------------------------------------------------


def index_entry(doc: RunDocument, file: str) -> IndexEntry:
    """The index's line for one finished run."""
    return {"clients": doc["parameters"]["clients"], "file": file, "status": "ok", "summary": run_summary(doc)}


def run_file_name(clients: int, repeat: int = 1) -> str:
    """``run-c00100.json``; a repeated point's later runs ``run-c00100-r2.json`` ..."""
    return f"run-c{clients:05d}.json" if repeat == 1 else f"run-c{clients:05d}-r{repeat}.json"


class SeriesWriter:
    """One directory with ``index.json`` (``docs/results.md``) and one run
    file per point; the index is rewritten after every point, so an
    interrupted sweep still leaves readable results."""

    def __init__(
        self, directory: Path, parameters: SeriesParameters, label: str, command: Sequence[str] | None
    ) -> None:
        """``parameters``: a RunParameters is welcome too (its ``clients`` stays out of the index)."""
        series = cast(SeriesParameters, {k: v for k, v in parameters.items() if k != "clients"})
        self.directory = directory
        self.label = label
        self.index: IndexDocument = {
            "schema_version": SCHEMA_VERSION,
            "kind": INDEX_KIND,
            "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": list(command) if command is not None else None,
            "sweep": {"variable": "clients", "values": []},
            "parameters": series,
            "environment": environment(),
            "runs": [],
        }

    def add(self, doc: RunDocument, repeat: int = 1) -> Path:
        clients = int(doc["parameters"]["clients"])
        file = run_file_name(clients, repeat)
        intervals = doc.get("intervals")
        if intervals is not None:  # the interval log beside the JSON, named in it
            intervals["hlog"] = hlog_name(file)
            self.directory.mkdir(parents=True, exist_ok=True)
            write_hlog(self.directory / intervals["hlog"], doc)
        path = write_json(self.directory / file, doc)
        self.index["sweep"]["values"].append(clients)
        self.index["runs"].append(index_entry(doc, file))
        self._flush()
        return path

    def add_error(self, clients: int, message: str) -> None:
        self.index["sweep"]["values"].append(clients)
        self.index["runs"].append({"clients": clients, "file": None, "status": "error", "error": message})
        self._flush()

    @property
    def all_ok(self) -> bool:
        return all(e["status"] == "ok" for e in self.index["runs"])

    def _flush(self) -> None:
        write_json(self.directory / INDEX_NAME, self.index)


# ---------------------------------------------------------------------------
# report directories
# ---------------------------------------------------------------------------


def new_report_dir(root: Path, suffix: str = "") -> Path:
    """``root/<YYYYmmdd-HHMMSS><suffix>``, numbered if that exists already."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path, n = root / f"{stamp}{suffix}", 1
    while path.exists():
        n += 1
        path = root / f"{stamp}-{n}{suffix}"
    return path


def point_latest(root: Path, target: Path, name: str = "latest") -> Path | None:
    """Make ``root/name`` a relative symlink to ``target`` (atomically); fall
    back to ``root/name.txt`` holding the path.  Returns what was written."""
    link = root / name
    if link.exists() and not link.is_symlink():
        print(f"note: {link} exists and is not a symbolic link; left alone", file=sys.stderr)
        return None
    rel = os.path.relpath(target.resolve(), root.resolve())
    tmp = root / f".{name}.tmp{os.getpid()}"
    try:
        if tmp.is_symlink():
            tmp.unlink()
        os.symlink(rel, tmp, target_is_directory=True)
        os.replace(tmp, link)
        return link
    except OSError:
        text = root / f"{name}.txt"
        text.write_text(rel + "\n", encoding="utf-8")
        return text
