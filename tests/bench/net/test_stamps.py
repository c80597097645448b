"""Where a delivery's latency ends: the kernel's receive stamp (default) or
the harness's read.  The kernel clock must never make a delivery look
earlier than it arrived, and must keep the harness's own read delay out of
the server's latency (reported apart as the receive lag)."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bench.net.stamps import enable, realtime_offset_ns, recv_stamped
from bench.report.runline import summary_line
from bench.swarm import SwarmConfig, run_swarm

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_TIMESTAMPNS receive stamps are Linux's"),
]


@pytest.fixture
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=5)
        server, _ = listener.accept()
    server.settimeout(5)
    try:
        yield server, client
    finally:
        client.close()
        server.close()


def _read(sock: socket.socket) -> tuple[bytes, int]:
    buf = memoryview(bytearray(65536))
    n, stamp = recv_stamped(sock, [buf], realtime_offset_ns())
    return buf[:n].tobytes(), stamp


def _enable_and_prime(server: socket.socket, client: socket.socket) -> None:
    """Enable stamps on ``client`` and wait until the kernel really stamps:
    when no socket on the machine had them on, Linux switches stamping on
    from a work queue, so the first segments after ``enable`` can go
    unstamped."""
    assert enable(client)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        server.sendall(b".")
        _, stamp = _read(client)
        if stamp:
            return
        time.sleep(0.01)
    raise AssertionError("the kernel never stamped a received segment")


def test_stamp_is_the_arrival_not_the_read(tcp_pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = tcp_pair
    _enable_and_prime(server, client)
    before_send = time.monotonic_ns()
    server.sendall(b"one line\n")
    after_send = time.monotonic_ns()
    time.sleep(0.3)  # the harness is "busy": it reads late
    data, stamp = _read(client)
    read_at = time.monotonic_ns()
    assert data == b"one line\n"
    # Arrival is when the kernel queued the bytes, within the send call (a
    # small allowance for converting between the realtime and monotonic clocks).
    slack = 2_000_000
    assert before_send - slack <= stamp <= after_send + slack
    assert read_at - stamp >= 250_000_000  # the 0.3 s read delay is not in it


def test_a_read_of_several_segments_gets_the_last_ones_time(tcp_pair: tuple[socket.socket, socket.socket]) -> None:
    """Never early: lines gathered by one read are stamped with the latest
    arrival among them, so their latency is over-, not under-stated."""
    server, client = tcp_pair
    _enable_and_prime(server, client)
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    server.sendall(b"first\n")
    time.sleep(0.15)
    second_sent = time.monotonic_ns()
    server.sendall(b"second\n")
    time.sleep(0.05)
    data, stamp = _read(client)
    assert data == b"first\nsecond\n"
    assert stamp >= second_sent - 2_000_000


def test_without_stamps_enabled_there_is_no_stamp(tcp_pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = tcp_pair
    server.sendall(b"x\n")
    client.settimeout(5)
    time.sleep(0.05)
    data, stamp = _read(client)
    assert data == b"x\n" and stamp == 0


def _run(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"progress": False, "workers": 1, "sample_interval_s": 0.2, "clients": 12}
    return run_swarm(SwarmConfig(**{**base, **kw}))


def test_swarm_reports_its_clock_and_the_harness_read_lag() -> None:
    doc = _run(rate=500, messages=300, warmup_s=0.1)
    assert doc["parameters"]["rx_clock"] == "kernel"
    assert doc["rx_clock"] == "kernel"
    assert doc["deliveries"]["delivered"] == doc["deliveries"]["expected"] == 300 * 11
    lag = doc["receive_lag_us"]
    # One lag per read of a measured receiver; reads gather lines, so at most
    # one per line received.
    assert 0 < lag["count"] <= doc["deliveries"]["lines_received"]
    assert lag["p50_us"] <= lag["max_us"]
    assert "harness read lag p99" in summary_line(doc)
    # Every measured delivery but the last of its read shared that read's stamp:
    # what is left is one per read that carried some, and each is a stamped read.
    assert 0 <= doc["shared_reads"] < doc["deliveries"]["delivered"]
    assert doc["deliveries"]["delivered"] - doc["shared_reads"] <= lag["count"]

    read = _run(rate=500, messages=300, warmup_s=0.1, rx_clock="read")
    assert read["rx_clock"] == "read"
    assert read["receive_lag_us"] is None
    assert read["deliveries"]["delivered"] == read["deliveries"]["expected"]
    assert "harness read lag" not in summary_line(read)
