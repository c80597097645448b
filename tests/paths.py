"""Where things are, for every test wherever its file sits: the repository and the report fixture."""

from __future__ import annotations

from pathlib import Path

#: The repository's root.
REPO = Path(__file__).resolve().parents[1]
#: A real sweep's results (``tests/bench/fixtures/report_sweep``), for the report tests.
FIXTURES = REPO / "tests" / "bench" / "fixtures"
