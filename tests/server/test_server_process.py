"""The server as a program: command line, first log line, signals."""

from __future__ import annotations

import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from server import protocol as p
from tests.conftest import ChatTestClient

LISTENING = re.compile(r"listening on (\S+):(\d+)$")


def start_server(*args: str) -> tuple[subprocess.Popen[str], tuple[str, int]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "--port", "0", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    first = proc.stderr.readline().strip()
    match = LISTENING.search(first)
    if match is None:
        proc.kill()
        raise AssertionError(f"first stderr line is not 'listening on HOST:PORT': {first!r}")
    # Keep reading the log so the server never blocks on a full pipe.
    threading.Thread(target=proc.stderr.read, daemon=True).start()
    return proc, (match[1], int(match[2]))


@pytest.fixture
def server_process() -> Iterator[tuple[subprocess.Popen[str], tuple[str, int]]]:
    proc, address = start_server()
    try:
        yield proc, address
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)


def test_help_explains_every_option() -> None:
    out = subprocess.run([sys.executable, "-m", "server", "--help"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    for option in [
        "--host",
        "--port",
        "--max-clients",
        "--max-line-bytes",
        "--send-queue-bytes",
        "--registration-timeout",
        "--fanout",
        "--log-level",
        "--max-rooms",
        "--max-rooms-per-client",
        "--tls-port",
        "--wss-port",
        "--tls-cert",
        "--tls-key",
        "--tls-only",
        "--accounts",
        "--accounts-required",
        "chat-server passwd NAME",
    ]:
        assert option in out.stdout


def test_room_limits_below_one_are_refused_clearly() -> None:
    for option in ("--max-rooms", "--max-rooms-per-client"):
        out = subprocess.run(
            [sys.executable, "-m", "server", "--port", "0", option, "0"], capture_output=True, text=True, timeout=30
        )
        assert out.returncode == 2
        assert "max rooms and max rooms per client must be at least 1 (the default room counts)" in out.stderr


def test_bad_option_values_are_refused_clearly() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "server", "--port", "70000"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 2
    assert "port must be 0..65535" in out.stderr


def test_port_in_use_is_a_clear_error(server_process: tuple[subprocess.Popen[str], tuple[str, int]]) -> None:
    _, (host, port) = server_process
    out = subprocess.run(
        [sys.executable, "-m", "server", "--port", str(port)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 2
    assert f"cannot listen on {host}:{port} (--port): Address already in use" in out.stderr
    # The WebSocket port taken, the TCP port free: the message names the WebSocket one, once.
    out = subprocess.run(
        [sys.executable, "-m", "server", "--port", "0", "--ws-port", str(port)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert out.stderr.count("cannot listen") == 1
    assert f"cannot listen on {host}:{port} (--ws-port): Address already in use" in out.stderr


def test_sigterm_with_clients_connected_exits_0_and_tells_them(
    server_process: tuple[subprocess.Popen[str], tuple[str, int]],
) -> None:
    proc, address = server_process
    clients = [ChatTestClient(address) for _ in range(5)]
    try:
        for i, c in enumerate(clients):
            c.register(f"c{i}")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
        for c in clients:
            assert c.read_until_closed()[-1] == p.Disconnected("server shutting down")
    finally:
        for c in clients:
            c.close()


def test_sigint_with_1000_clients_connected_shuts_down_within_2_seconds() -> None:
    wanted = 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < wanted + 100:
        pytest.skip(f"descriptor limit {hard} is below {wanted + 100}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted + 100), hard))
    proc, address = start_server("--log-level", "WARNING")
    socks: list[socket.socket] = []
    try:
        for i in range(wanted):
            s = socket.create_connection(address, timeout=10)
            s.sendall(f"user{i}\n".encode())
            socks.append(s)
        # Registration is complete once the last client's welcome arrives.
        last = ChatTestClient(address)
        last.register("last")
        last.close()
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        elapsed = time.monotonic() - started
        assert elapsed < 2.0, f"shutdown took {elapsed:.2f}s with {wanted} clients"
        # Every client got the closing line (after its own welcome and others' join notices).
        closing = p.encode_disconnect("server shutting down")
        for s in socks[:: wanted // 20]:
            data = b""
            s.settimeout(5)
            while chunk := s.recv(1 << 20):
                data += chunk
            assert data.endswith(closing)
    finally:
        for s in socks:
            s.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait(5)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_log_names_every_identity_change_and_every_disconnect() -> None:
    """The log follows a person through a rename and says why each client
    went away, the ones dropped by the shutdown included."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "--port", "0"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    try:
        assert proc.stderr is not None
        match = LISTENING.search(proc.stderr.readline().strip())
        assert match is not None
        address = (match[1], int(match[2]))
        bob, carol = ChatTestClient(address), ChatTestClient(address)
        try:
            bob.register("bob")
            carol.register("carol")
            bob.send_line("/nick robert")
            bob.wait_for(lambda e: isinstance(e, p.Renamed))
            proc.send_signal(signal.SIGTERM)
            log = proc.stderr.read()  # to EOF: the process has exited
            assert proc.wait(5) == 0
        finally:
            bob.close()
            carol.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert "bob is now known as robert" in log
    assert "robert left (server shutting down)" in log
    assert "carol left (server shutting down)" in log


def test_second_startup_line_states_every_effective_option_at_any_log_level() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "--port", "0", "--log-level", "ERROR", "--announce-limit", "5"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stderr is not None
        assert LISTENING.search(proc.stderr.readline().strip())
        options = proc.stderr.readline().strip()
    finally:
        proc.kill()
        proc.wait(5)
    assert "options: " in options
    for setting in ("fanout=queued", "announce_limit=5", "rate_limit=50.0", "log_level=ERROR", "backlog=1024"):
        assert f" {setting}" in options, options
