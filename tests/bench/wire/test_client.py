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


def test_a_client_joins_a_workloads_rooms_and_hears_only_them() -> None:
    with EmbeddedTarget() as target:
        address = (target.host, target.port)
        deadline = time.monotonic() + 10
        alice, bob, carol = WireClient.open(address), WireClient.open(address), WireClient.open(address)
        try:
            alice.register("alice", deadline, rooms=("r1", "r2"))
            bob.register("bob", deadline, rooms=("r1",))
            carol.register("carol", deadline, rooms=("r2",))
            bob.take_lines()
            carol.take_lines()
            alice.sock.sendall(alice.adapter.encode_message("alice", "to r1", "r1"))
            line = protocol.decode_text(bob.next_line(deadline))
            assert protocol.parse_server_line(line) == protocol.Message("alice", "to r1", "#r1")
            alice.sock.sendall(alice.adapter.encode_message("alice", "to r2", "r2"))
            line = protocol.decode_text(carol.next_line(deadline))
            assert protocol.parse_server_line(line) == protocol.Message("alice", "to r2", "#r2")
            assert bob.take_lines() == []  # not in #r2, nor in the lobby any more
        finally:
            for client in (alice, bob, carol):
                client.close()
