"""The Locust WebSocket user end to end: ``locust -f bench/locustfile_ws.py``
against the real server's ``--ws-port``, both subprocesses, bounded and
stopped in ``finally``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.wire.ws_adapter import parse_ws_url
from tests.bench.loadtest.test_run import check_healthy_run, run_locust, server_process
from tests.paths import REPO

LOCUSTFILE_WS = REPO / "bench" / "locustfile_ws.py"


@pytest.fixture
def ws_server(tmp_path: Path) -> Iterator[int]:
    """``python -m server --port 0 --ws-port 0``; yields its WebSocket port."""
    yield from server_process(tmp_path, ["--ws-port", "0", "--rate-limit", "0"], "websocket on ")


def test_websocket_users_report_fanout_without_failures(tmp_path: Path, ws_server: int) -> None:
    prefix = tmp_path / "ws"
    args = ["--headless", "--host", f"ws://127.0.0.1:{ws_server}/ws", "-u", "10", "-r", "10", "-t", "4s"]
    args += ["--csv", str(prefix), "--only-summary"]
    code, output = run_locust(tmp_path, "ws", args, LOCUSTFILE_WS)
    check_healthy_run(code, output, prefix)


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
