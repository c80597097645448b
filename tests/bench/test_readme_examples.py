"""The README's examples do what the README says they show."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

from bench import cli
from tests.paths import REPO

README = REPO / "README.md"


def readme_command(marker: str) -> list[str]:
    """The arguments after ``python -m bench`` of the README line holding ``marker``."""
    for line in README.read_text(encoding="utf-8").splitlines():
        if "-m bench " in line and marker in line:
            return shlex.split(line.split("-m bench ", 1)[1].split("#", 1)[0])
    raise AssertionError(f"no README example with {marker!r}")


def p99_us(out: Path, series: str) -> int:
    index = json.loads((out / series / "index.json").read_text())
    (run,) = index["runs"]
    assert run["status"] == "ok" and run["summary"]["delivered_ratio"] == 1.0 and run["summary"]["faults"] == 0
    return int(run["summary"]["p99_us"])


def saturated(out: Path) -> bool:
    """The load generator said it was saturated in one of the runs under ``out``."""
    return any(json.loads(path.read_text()).get("load_generator_saturated") for path in out.glob("*/run-*.json"))


#: Runs of the example at most: one more when the load generator says it was
#: saturated (the suite's other process held the cores), as the report warns
#: that such a run describes the machine more than the server.
ATTEMPTS = 3


def test_stalled_reader_example_shows_direct_stall_and_queued_not(tmp_path: Path) -> None:
    args = readme_command("--stalled-clients")
    # The README's example, one second long instead of five (1,500 messages: the
    # stalled client still gets ~5.9 MB, more than the kernel buffers hold).
    for attempt in range(ATTEMPTS):
        out = tmp_path / f"stall-{attempt}"
        extra = ["--duration", "1", "--warmup", "0", "--workers", "2", "--quiet", "--no-latest", "--out", str(out)]
        assert cli.main([*args, *extra]) == 0
        if not saturated(out):
            break
    queued, direct = p99_us(out, "queued"), p99_us(out, "direct")
    assert direct > 3 * queued, (queued, direct)
    assert direct > 100_000, direct  # a stall of a tenth of a second or more
    (queued_run,) = (out / "queued").glob("run-*.json")
    assert any("send queue exceeded" in line for line in json.loads(queued_run.read_text())["target"]["stderr_tail"])
