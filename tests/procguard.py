"""Every test stops the processes it starts: a test that leaves one running
fails (an error at its teardown, naming each process) and the process is
killed, so one leak cannot hide behind the tests that run after it.

How a process is known to be a test's: before each test the session puts
the test's own token in its environment (:data:`ITEM_VAR`), which every
process started from then on inherits -- servers and brokers the harness
starts, the CLI run as a subprocess and whatever *it* starts, and daemons
that detach from their parent (tmux's server) alike.  After the test's
teardown (its fixtures included) any live process created since the test
began and carrying that token is a leak.  Other sessions' processes (other
checkouts, other users) carry other tokens and are never touched.

A fixture that keeps a process across tests (module or session scope)
would start it under the first test's token; none does today -- give such
a process its own environment (``env=``) without :data:`ITEM_VAR`.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Generator
from dataclasses import dataclass

import psutil
import pytest

#: The environment variable that carries the running test's token.
ITEM_VAR = "CHATBENCH_TEST_ITEM"
#: Seconds a test's processes get to finish exiting after its teardown (a
#: browser's helpers exit a moment after the driver quits).
EXIT_GRACE_S = 5.0
#: Seconds a killed process gets to die.
KILL_WAIT_S = 5.0
#: Seconds between two looks while waiting.
POLL_S = 0.1
#: ``create_time`` is in clock ticks; a process created in the test's first
#: tick may read as a little earlier.
CLOCK_SLACK_S = 1.0
#: Processes that outlive a test by design: multiprocessing's resource
#: tracker, started once for the whole session by the first ``spawn`` pool.
SESSION_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


@dataclass(frozen=True)
class ItemMark:
    token: str
    started: float


MARK = pytest.StashKey[ItemMark]()


def _environ(proc: psutil.Process) -> dict[str, str]:
    try:
        return proc.environ()
    except (psutil.Error, OSError):
        return {}


def _is_session_helper(proc: psutil.Process) -> bool:
    try:
        cmdline = " ".join(proc.cmdline())
        return proc.ppid() == os.getpid() and any(helper in cmdline for helper in SESSION_HELPERS)
    except psutil.Error:
        return False


def processes_of(mark: ItemMark) -> list[psutil.Process]:
    """Live processes created since the test began that carry its token."""
    found = []
    me = os.getpid()
    for proc in psutil.process_iter(["create_time", "status"]):
        info = proc.info
        if proc.pid == me or info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if (info["create_time"] or 0) < mark.started - CLOCK_SLACK_S:
            continue
        if _environ(proc).get(ITEM_VAR) == mark.token and not _is_session_helper(proc):
            found.append(proc)
    return found


def _describe(proc: psutil.Process) -> str:
    try:
        return f"pid {proc.pid}: {' '.join(proc.cmdline()) or proc.name()}"
    except psutil.Error:
        return f"pid {proc.pid}: (exited)"


def leaked_processes(mark: ItemMark, grace: float = EXIT_GRACE_S) -> list[str]:
    """The test's processes still running ``grace`` seconds after its
    teardown, killed; one line each (empty: none)."""
    deadline = time.monotonic() + grace
    left = processes_of(mark)
    while left and time.monotonic() < deadline:
        time.sleep(POLL_S)
        left = processes_of(mark)
    lines = [_describe(proc) for proc in left]
    for proc in left:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass
    _wait_gone(left, KILL_WAIT_S)
    return lines


def _gone(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def _wait_gone(procs: list[psutil.Process], timeout: float) -> None:
    """Wait until each has died, without reaping any (a ``Popen`` that waits
    for its child later must still get its exit status)."""
    deadline = time.monotonic() + timeout
    while not all(_gone(p) for p in procs) and time.monotonic() < deadline:
        time.sleep(POLL_S / 10)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    mark = ItemMark(token=uuid.uuid4().hex, started=time.time())
    item.stash[MARK] = mark
    os.environ[ITEM_VAR] = mark.token
    try:
        return (yield)
    finally:
        os.environ[ITEM_VAR] = "between-tests"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    mark = item.stash.get(MARK, None)
    if call.when == "teardown" and mark is not None:
        leaked = leaked_processes(mark)
        if leaked:
            report.outcome = "failed"
            report.longrepr = (
                f"{item.nodeid} left {len(leaked)} process(es) running after its teardown "
                f"(killed now; stop every process a test starts):\n  " + "\n  ".join(leaked)
            )
    return report
