"""Fixtures for the client tests: a real loopback server in-process, clients
as subprocesses, bare-socket peers; everything is shut down at teardown."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from server.app import ChatServer
from server.config import ServerConfig
from tests.client.client_harness import ClientProcess, Peer


@pytest.fixture
def server() -> Iterator[ChatServer]:
    chat = ChatServer(ServerConfig(host="127.0.0.1", port=0, log_level="WARNING"))
    chat.start()
    try:
        yield chat
    finally:
        chat.shutdown(grace=1.0)


@pytest.fixture
def spawn() -> Iterator[Callable[..., ClientProcess]]:
    """``spawn(*args)`` starts a client; every one is killed at teardown."""
    started: list[ClientProcess] = []

    def start(*args: str) -> ClientProcess:
        client = ClientProcess(list(args))
        started.append(client)
        return client

    try:
        yield start
    finally:
        for client in started:
            client.kill()


@pytest.fixture
def peer(server: ChatServer) -> Iterator[Callable[[str], Peer]]:
    peers: list[Peer] = []

    def join(name: str) -> Peer:
        p = Peer(server.address, name)
        peers.append(p)
        return p

    try:
        yield join
    finally:
        for p in peers:
            p.close()
