"""Two clocks without a second machine: a Locust master, a worker, and a
worker in a time namespace whose monotonic clock runs 3 s ahead
(``unshare --time --monotonic 3 --fork``), against the real server.

The namespaced worker's stamps are 3 s off everybody else's, and its boot id
is the same, so a boot id alone would call them one clock.  The run must
find its clock's offset (about -3 s: uncorrected, every latency between the
two workers would be off by 3 s), correct the cross-worker latencies by the
two offsets (``clock=corrected``) and report the bound, and those latencies
must match the same-worker ones (``clock=same``) within that bound.
Skipped, saying why, where the kernel has no time namespaces or we are not
root."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bench.loadtest.test_run import (
    LOCUSTFILE,
    check_healthy_run,
    free_port,
    headless,
    run_locust,
    server_process,
    stop,
)

#: The namespaced worker's monotonic clock runs this far ahead (seconds).
AHEAD_S = 3
#: Cross-worker medians must match same-worker ones within the reported bound
#: plus this much sampling noise (10% + 0.3 ms: two sets of receivers on a shared machine).
NOISE_REL = 0.10
NOISE_US = 300
#: A shared CI machine can make the offsets' round trips slow: allow a wider bound than the default 1 ms.
MAX_CLOCK_ERROR_MS = 5.0


def time_namespace_reason() -> str | None:
    """Why no time namespace can be made here (None: it can)."""
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    done = subprocess.run(
        ["unshare", "--time", "--monotonic", str(AHEAD_S), "--fork", "true"], capture_output=True, text=True, timeout=30
    )
    if done.returncode != 0:
        return f"no time namespaces (needs Linux >= 5.6 and root): {done.stderr.strip()[:120]}"
    return None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[int]:
    """``python -m server --port 0`` (flood control off: 5 messages a second per user)."""
    yield from server_process(tmp_path, ["--rate-limit", "0"], "listening on ")


def worker(tmp_path: Path, name: str, master_port: int, prefix: list[str]) -> subprocess.Popen[bytes]:
    command = [*prefix, sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker", "--master-host"]
    with (tmp_path / f"{name}.out").open("wb") as out:
        return subprocess.Popen(
            [*command, "127.0.0.1", "--master-port", str(master_port)],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_a_worker_in_a_time_namespace_is_corrected_within_the_bound(tmp_path: Path, server: int) -> None:
    reason = time_namespace_reason()
    if reason is not None:
        pytest.skip(reason)
    prefix = tmp_path / "timens"
    master_port = free_port()
    workers = [
        worker(tmp_path, "plain", master_port, []),
        worker(tmp_path, "ahead", master_port, ["unshare", "--time", "--monotonic", str(AHEAD_S), "--fork"]),
    ]
    try:
        args = [
            *headless(server, prefix, users=10, seconds=6),
            "--chat-rate",
            "5",
            "--chat-max-clock-error",
            str(MAX_CLOCK_ERROR_MS),
            "--master",
            "--expect-workers",
            "2",
            "--expect-workers-max-wait",
            "60",
            "--master-bind-host",
            "127.0.0.1",
            "--master-bind-port",
            str(master_port),
        ]
        code, output = run_locust(tmp_path, "master", args)
        assert code == 0, output[-3000:]
        for proc in workers:
            assert proc.wait(timeout=30) == 0
    finally:
        for proc in workers:
            stop(proc)
    result = check_healthy_run(code, output, prefix, clocks=2)
    clock = result["clock"]
    keys = {w["key"]: w for w in clock["workers"]}
    assert len(keys) == 2, clock
    (ahead_key,) = [key for key in keys if key.endswith(f"+monotonic={AHEAD_S}.000000000")]
    (plain_key,) = [key for key in keys if key != ahead_key]
    assert ahead_key.startswith(plain_key)  # the same boot: only the namespace tells them apart
    ahead, plain = keys[ahead_key], keys[plain_key]
    # Uncorrected, the latencies between the two workers would be off by 3 s:
    apart_ms = plain["offset_ms"] - ahead["offset_ms"]
    assert abs(apart_ms - AHEAD_S * 1000) <= ahead["bound_ms"] + plain["bound_ms"], clock
    # Corrected, they match the latencies within one worker, within the reported bound.
    same, corrected = result["labels"]["clock=same"]["summary"], result["labels"]["clock=corrected"]["summary"]
    assert same["count"] > 100 and corrected["count"] > 100, result["labels"]
    assert clock["corrected"] == corrected["count"]
    bound_us = clock["bound_max_ms"] * 1000
    assert 0 < bound_us <= MAX_CLOCK_ERROR_MS * 1000
    for key in ("p50_us", "p90_us"):
        allowed = bound_us + NOISE_REL * same[key] + NOISE_US
        assert abs(corrected[key] - same[key]) <= allowed, (key, same, corrected, bound_us)
    assert "runs in a time namespace" in output
    assert "chatbench FANOUT clock=corrected" in output and "chatbench clocks (final): corrected=" in output
    assert os.geteuid() == 0  # (the namespace was made: we are root)
