"""``--out-jsonl FILE``: the run as JSON lines, one object per interval, written as it goes.

Each interval is ``{"type": "interval", "run": TITLE, "clients": N, ...}``
with the fields of the document's interval section (``docs/results.md``;
``sent`` and ``lost`` are null while the run goes: they are in the run's
JSON at the end); each run ends with ``{"type": "run", ...}``: its id, its
overall latency, deliveries, integrity and thresholds.  Every line is
flushed when written, so ``tail -f`` and log shippers see each interval as
soon as it is complete.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

from bench.results.schema import RunDocument
from bench.swarm.series import IntervalView, RunInfo


class JsonLines:
    """Appends one JSON object per interval (and per finished run) to a file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.stream: TextIO = self.path.open("a", encoding="utf-8")
        self.run: RunInfo | None = None

    def _write(self, obj: object) -> None:
        self.stream.write(json.dumps(obj, separators=(",", ":")) + "\n")
        self.stream.flush()

    def run_started(self, run: RunInfo) -> None:
        self.run = run

    def interval(self, view: IntervalView) -> str | None:
        run = self.run
        self._write(
            {"type": "interval", "run": run.title if run else None, "clients": run.clients if run else None}
            | dict(view.section)
        )
        return None

    def run_finished(self, doc: RunDocument) -> None:
        self._write(
            {
                "type": "run",
                "run": self.run.title if self.run else None,
                "run_id": doc["run_id"],
                "clients": doc["parameters"]["clients"],
                "completed": doc["completed"],
                "latency_us": doc["latency_us"],
                "deliveries": doc["deliveries"],
                "integrity": {k: v for k, v in doc["integrity"].items() if k != "pairs"},
                "thresholds": doc.get("thresholds", []),
            }
        )

    def close(self) -> None:
        self.stream.close()
