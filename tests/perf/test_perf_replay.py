"""Replay benchmark of the harness's receive path (bench/studies/replay.py).

pytest-benchmark times one replay (``pytest tests/perf -k replay
--benchmark-autosave`` for numbers); the test itself only checks that the
replay's results are exactly right -- every delivery counted once, no
integrity faults, the histogram equal to one built value by value -- for a
buffer size that takes the vectorised block path and one that takes the
per-line path.  No speed is asserted: ``python -m bench replay`` measures.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.measure import recorder
from bench.studies.replay import ReplayConfig, block_path_steps, check, make_stream, run_replay


@pytest.mark.parametrize("chunk_bytes", [262144, 1024], ids=["block-path", "line-path"])
def test_perf_replay_receive_path(benchmark: Any, chunk_bytes: int) -> None:
    stream = make_stream(ReplayConfig(deliveries=40_000, receivers=2, chunk_bytes=chunk_bytes))
    benchmark.group = "replay receive path"
    result = benchmark.pedantic(run_replay, args=(stream,), rounds=3, iterations=1)
    assert check(stream, result) == []
    assert result.delivered == result.deliveries_expected == 40_000
    assert result.faults == 0
    assert result.histogram_count == result.measured_expected == 2 * stream.measured
    benchmark.extra_info["deliveries_per_s"] = round(result.per_s)
    benchmark.extra_info["lines_per_chunk"] = round(stream.messages / len(stream.chunks), 1)
    assert result.lines == result.delivered  # every line a delivery, counted once
    if chunk_bytes >= recorder.BLOCK_MIN_BYTES * 2:
        # Every buffer but each receiver's last (short) one took the block path.
        assert result.blocks_fast >= result.chunks - 2
    else:
        assert result.blocks_fast == 0


def test_perf_replay_check_catches_a_wrong_histogram() -> None:
    stream = make_stream(ReplayConfig(deliveries=2_000, receivers=1, chunk_bytes=4096))
    result = run_replay(stream)
    assert check(stream, result) == []
    result.histogram.record(123_456_789)
    result.histogram_count += 1
    assert check(stream, result)


def test_block_path_steps_names_every_step_and_needs_big_buffers() -> None:
    big = make_stream(ReplayConfig(deliveries=20_000, receivers=1, chunk_bytes=65536), build_expected=False)
    steps = block_path_steps(big, buffers=3, passes=1)
    assert set(steps) >= {"layout (line_layout)", "fields and check (parse_probe_block)", "names", "total"}
    assert all(ns > 0 for ns in steps.values())
    small = make_stream(ReplayConfig(deliveries=2_000, receivers=1, chunk_bytes=1024), build_expected=False)
    with pytest.raises(ValueError, match="block path"):
        block_path_steps(small, buffers=3, passes=1)
