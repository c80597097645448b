"""bench/wire/client.py: the one blocking client, against the real server."""

from __future__ import annotations

import socket
import time

import pytest

from bench.targets import EmbeddedTarget
from bench.wire.client import ClientError, RegistrationRefused, WireClient
from server import protocol

pytestmark = pytest.mark.timeout(60)


def test_registers_retries_a_refused_name_on_the_same_connection_and_reads_lines() -> None:
    with EmbeddedTarget() as target:
        address = (target.host, target.port)
        alice = WireClient.connect(address, "alice")
        other = WireClient.open(address)
        try:
            deadline = time.monotonic() + 10
            with pytest.raises(RegistrationRefused, match="alice"):
                other.register("alice", deadline)  # taken: the server asks again
            other.register("bob", deadline)
            assert other.name == "bob"
            event = protocol.parse_server_line(protocol.decode_text(alice.next_line(deadline)))
            assert event == protocol.Joined("bob")
            assert alice.take_lines() == []
        finally:
            alice.close()
            other.close()


def test_a_silent_server_times_out_and_the_socket_is_closed() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener, pytest.raises(ClientError, match="timed out"):
        WireClient.connect(listener.getsockname()[:2], "nobody", timeout=0.3)
