"""The sweep report's "When a client stops reading" section says what the
runs show, computed from them (fixture runs, no sockets)."""

from __future__ import annotations

import copy
import json

from bench.report import doc, stall
from bench.results.schema import RunDocument
from tests.paths import FIXTURES

FIXTURES = FIXTURES / "report_sweep"


def _run(fanout: str, p50_ms: float, log: list[str], p99_ms: float | None = None) -> stall.StallRun:
    run: RunDocument = copy.deepcopy(json.loads((FIXTURES / fanout / "run-c00003.json").read_text()))
    run["latency_us"]["p50_us"] = int(p50_ms * 1000)
    run["latency_us"]["p99_us"] = int((p99_ms if p99_ms is not None else p50_ms * 2) * 1000)
    run["target"]["stderr_tail"] = log
    run["target"]["effective_options"] = {"send_queue_bytes": "65536"}
    return stall.StallRun(fanout, run, f"stalled/{fanout}/run-c00003.json")


CUT = ["x WARNING server.fanout: cb-st0: send queue exceeded (65536 bytes), disconnecting"]


def test_direct_far_slower_is_said_to_stall_everyone() -> None:
    runs = [_run("queued", 2.5, CUT), _run("direct", 1800.0, [])]
    said = stall.verdict(runs)
    assert said is not None and "stalls everyone under `direct`" in said and "720x" in said
    assert "cut the stalled client off" in said
    (table,) = [b for b in stall.blocks(runs) if isinstance(b, doc.Table)]
    fates = [row[5] for row in table.rows]
    assert fates == [
        "cut off by the server at its 64 KiB send queue (send queue exceeded)",
        "kept: the server waited on it",
    ]


def test_the_verdict_reads_the_median_so_a_noisy_tail_on_queued_does_not_hide_the_stall() -> None:
    # Numbers from a CI run under parallel tests: the busy harness put queued's p99 at 412 ms.
    runs = [_run("queued", 20.0, CUT, p99_ms=411.7), _run("direct", 374.0, [], p99_ms=788.0)]
    said = stall.verdict(runs)
    assert said is not None and "stalls everyone under `direct`" in said and "19x" in said
    assert "p99 788.00 ms against 411.70 ms" in said
    # A slow median on both is no stall: direct must be slow where queued is not.
    both = stall.verdict([_run("queued", 150.0, CUT), _run("direct", 300.0, [])])
    assert both is not None and both.startswith("Here the two were alike")


def test_alike_runs_are_said_to_be_alike_and_one_strategy_gets_no_verdict() -> None:
    alike = [_run("queued", 2.5, CUT), _run("direct", 4.0, [])]
    said = stall.verdict(alike)
    assert said is not None and said.startswith("Here the two were alike") and "--duration" in said
    assert stall.verdict(alike[:1]) is None
    assert stall.blocks([]) == []
