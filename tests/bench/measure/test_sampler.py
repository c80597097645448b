"""The resource sampler's window figures, on real processes: context switches
(summed over a process's threads, read only at the window's edges) and CPU."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import psutil
import pytest

from bench.measure.sampler import ResourceSampler, _cpu_seconds

#: Four threads that each sleep 1 ms at a time: about 450 switches a second each.
BUSY_THREADS = """
import threading, time
def nap():
    while True:
        time.sleep(0.001)
for _ in range(4):
    threading.Thread(target=nap, daemon=True).start()
print("ready", flush=True)
time.sleep(60)
"""

#: One thread asleep for the whole window.
IDLE = 'import time; print("ready", flush=True); time.sleep(60)'


@pytest.fixture
def child() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:
        p.kill()
        p.wait(10)


def start(procs: list[subprocess.Popen[str]], code: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    procs.append(proc)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.timeout(30)
def test_switches_in_the_window_are_summed_over_threads_and_zero_for_a_sleeper(
    child: list[subprocess.Popen[str]],
) -> None:
    busy = start(child, BUSY_THREADS)
    idle = start(child, IDLE)
    sampler = ResourceSampler(interval_s=0.1)
    assert sampler.watch("server", busy.pid, "server")
    assert sampler.watch("worker-0", idle.pid, "worker")
    sampler.start()
    sampler.window_start()
    time.sleep(0.5)
    sampler.window_end()
    sampler.stop()
    result = sampler.result()
    assert result["server"] is not None
    busy_switches = result["server"]["summary"].get("switches_window")
    idle_switches = result["workers"][0]["summary"].get("switches_window")
    # 4 threads x ~450/s x 0.5 s is ~900; a loaded CI machine sleeps longer than asked, not shorter
    assert busy_switches is not None and busy_switches >= 200, busy_switches
    assert idle_switches is not None and idle_switches <= 5, idle_switches
    busy_cpu = result["server"]["summary"].get("cpu_seconds_window")
    assert busy_cpu is not None and 0 < busy_cpu < 0.5 * 4


def test_cpu_time_is_read_to_the_microsecond_not_in_clock_ticks() -> None:
    """The process's CPU clock, the one ``time.process_time`` reads for itself:
    psutil's clock ticks would be up to 10 ms off."""
    me = psutil.Process(os.getpid())
    for _ in range(5):
        end = time.process_time() + 0.013  # not a whole number of ticks
        while time.process_time() < end:
            pass
        before = time.process_time()
        got = _cpu_seconds(me)
        after = time.process_time()
        assert before <= got <= after + 1e-6
