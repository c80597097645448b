"""--server-pid is checked: the process (or one it started) must be the one
listening on the target's port, or its CPU and memory would be reported as
the server's (issue 27, item 7).  Real servers, real pids."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest

from bench import cli
from bench.targets import EmbeddedTarget, ExternalTarget, TargetError, make_target
from bench.targets.base import can_connect, free_port
from bench.targets.external import check_server_pid


def _gone_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait(30)
    return done.pid


@pytest.mark.timeout(60)
def test_the_servers_own_pid_passes_and_a_wrong_one_is_refused_naming_the_listener() -> None:
    with EmbeddedTarget() as server:
        assert server.pid is not None
        target = ExternalTarget(server.host, server.port, server.pid)
        assert target.pid_warning is None and "pid_check" not in target.describe()
        other = subprocess.Popen(["sleep", "30"])  # running, but not the server
        try:
            with pytest.raises(TargetError) as info:
                ExternalTarget(server.host, server.port, other.pid)
        finally:
            other.kill()
            other.wait(10)
        text = str(info.value)
        assert f"--server-pid {other.pid} (sleep) does not listen on port {server.port}" in text
        assert f"pass --server-pid {server.pid}," in text and "\n" not in text
        with pytest.raises(TargetError, match="no such process"):
            make_target(f"{server.host}:{server.port}", server_pid=_gone_pid())


@pytest.mark.timeout(60)
def test_a_wrapper_of_the_server_is_refused_naming_the_server_it_started() -> None:
    # `sh -c "python -m server ...; exit 0"`: sh stays, the server is its child; sampling sh would report sh
    port = free_port("127.0.0.1")
    command = f"{sys.executable} -m server --port {port} --log-level WARNING; exit 0"
    wrapper = subprocess.Popen(["sh", "-c", command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server: psutil.Process | None = None
    try:
        deadline = time.monotonic() + 20
        while not can_connect("127.0.0.1", port) and time.monotonic() < deadline:
            time.sleep(0.05)
        (server,) = psutil.Process(wrapper.pid).children()
        with pytest.raises(TargetError, match=f"{server.pid} \\(python[0-9.]*\\), a process {wrapper.pid} started,"):
            check_server_pid(wrapper.pid, port)
        assert check_server_pid(server.pid, port) is None
    finally:
        if server is not None:
            server.terminate()  # the server first: sh then exits by itself
        try:
            wrapper.wait(15)
        except subprocess.TimeoutExpired:
            wrapper.kill()
            wrapper.wait(5)


@pytest.mark.timeout(60)
def test_the_command_line_refuses_a_wrong_pid_in_one_line() -> None:
    with EmbeddedTarget() as server:
        argv = [sys.executable, "-m", "bench", "run", "--target", f"{server.host}:{server.port}"]
        done = subprocess.run(
            [*argv, "--server-pid", str(os.getpid()), "--clients", "2", "--duration", "0.2", "--quiet"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2, done.stderr
    assert "does not listen on port" in done.stderr.splitlines()[0]
    assert "Traceback" not in done.stderr


def test_a_started_target_takes_no_server_pid() -> None:
    with pytest.raises(TargetError, match="HOST:PORT target only"):
        make_target("embedded", server_pid=1)
    assert cli.target_list("embedded")  # the option, not the target, is refused
