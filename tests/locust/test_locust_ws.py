"""The Locust WebSocket user end to end: ``locust -f bench/locustfile_ws.py``
against the real server's ``--ws-port``, both subprocesses, bounded and
stopped in ``finally``."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.wire.ws_adapter import parse_ws_url
from tests.locust.test_locust_run import REPO, RUN_TIMEOUT, check_healthy_run, stop

LOCUSTFILE_WS = REPO / "bench" / "locustfile_ws.py"


@pytest.fixture
def ws_server(tmp_path: Path) -> Iterator[int]:
    """``python -m server --port 0 --ws-port 0``; yields its WebSocket port."""
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server", "--port", "0", "--ws-port", "0", "--rate-limit", "0"],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 15
        port = None
        while port is None:
            for line in log_path.read_text(errors="replace").splitlines():
                if "websocket on " in line:
                    port = int(line.rsplit(":", 1)[1])
            if port is None:
                assert proc.poll() is None, f"server exited: {log_path.read_text()}"
                assert time.monotonic() < deadline, "server did not report its websocket port"
                time.sleep(0.05)
        yield port
    finally:
        stop(proc, signal.SIGINT)


def test_websocket_users_report_fanout_without_failures(tmp_path: Path, ws_server: int) -> None:
    prefix = tmp_path / "ws"
    args = ["--headless", "--host", f"ws://127.0.0.1:{ws_server}/ws", "-u", "10", "-r", "10", "-t", "4s"]
    out_path = tmp_path / "ws.out"
    with out_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE_WS), *args, "--csv", str(prefix), "--only-summary"],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        code = proc.wait(timeout=RUN_TIMEOUT)
    finally:
        stop(proc)
    check_healthy_run(code, out_path.read_text(errors="replace"), prefix)


@pytest.mark.parametrize(
    ("host", "message"),
    [("tcp://127.0.0.1:1", "use ws://"), ("ws://127.0.0.1:1/other", "path /ws only"), ("ws://:1/ws", "no host")],
)
def test_bad_ws_hosts_say_what_is_wrong(host: str, message: str) -> None:
    # The parser the WebSocket user checks --host with (imported without
    # Locust: gevent's monkey-patching must stay out of the test process).
    with pytest.raises(ValueError, match=message):
        parse_ws_url(host)
    assert parse_ws_url("ws://127.0.0.1:8080/ws") == ("127.0.0.1", 8080)
