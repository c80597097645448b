"""Memory given back after a storm (server.memory): the trimmer returns the
free pages a thread's arena kept, and stays idle while RSS is near its start."""

from __future__ import annotations

import gc
import socket
import struct
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable

import pytest

from server import memory
from server.app import ChatServer
from tests.conftest import ChatTestClient, TlsFiles, wait_until
from tests.paths import REPO

MIB = 1 << 20

pytestmark = pytest.mark.skipif(not memory.Trimmer().enabled, reason="needs glibc (malloc_trim)")


def churn_in_a_thread(total: int, keep: list[bytes]) -> None:
    """What a storm leaves: a thread allocates ``total`` bytes in 64 KiB
    buffers (under glibc's mmap threshold, so in its arena), keeps one small
    object after each, and frees the buffers: RSS stays up, nothing is used."""

    def work() -> None:
        big = []
        for _ in range(total // (64 * 1024)):
            big.append(b"\x01" * (64 * 1024 - 64))  # touched (bytes(n) would be calloc, untouched)
            keep.append(b"\x02" * 1024)  # small survivors (past pymalloc) pin the heap
        big.clear()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()


def trim_after_a_storm() -> None:
    """The storm and the trim, in a process of their own (``python -m
    tests.server.test_memory``): in pytest's long-lived process an earlier
    test's freed, still resident arena may take the storm without RSS growing."""
    trimmer = memory.Trimmer(interval=0.0, growth=32 * MIB, now=0.0)
    keep: list[bytes] = []
    churn_in_a_thread(160 * MIB, keep)
    before = memory.resident_bytes()
    assert before > trimmer.baseline + 64 * MIB, "the churn should have left the pages resident"
    assert trimmer.tick(1.0)
    after = memory.resident_bytes()
    assert before - after > 64 * MIB, (before // MIB, after // MIB)
    assert trimmer.trims == 1
    del keep


def trim_what_churn_left() -> None:
    """Churn's creep: far below the storm threshold, but past what the last
    trim left by a step, it is trimmed; right after, nothing is."""
    trimmer = memory.Trimmer(interval=0.0, growth=1 << 40, now=0.0, step=4 * MIB)
    keep: list[bytes] = []
    churn_in_a_thread(24 * MIB, keep)
    before = memory.resident_bytes()
    assert before > trimmer.left + 8 * MIB, "the churn should have left the pages resident"
    assert trimmer.tick(1.0)
    assert before - memory.resident_bytes() > 8 * MIB
    assert trimmer.left < before - 8 * MIB  # what this trim left: the next step counts from it
    assert not trimmer.tick(2.0)  # nothing grew since
    assert trimmer.trims == 1
    del keep


@pytest.mark.parametrize("what", ["storm", "churn"])
def test_a_trim_gives_back_what_a_storm_or_churn_left(what: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.server.test_memory", what],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def test_no_trim_near_the_start_size_nor_before_the_interval() -> None:
    trimmer = memory.Trimmer(interval=10.0, growth=1 << 40, now=0.0, step=1 << 40)
    assert not trimmer.tick(5.0)  # too early
    assert not trimmer.tick(11.0)  # RSS is nowhere near baseline + 1 TiB
    assert trimmer.trims == 0


def test_resident_bytes_is_this_process() -> None:
    import psutil

    assert abs(memory.resident_bytes() - psutil.Process().memory_info().rss) < 16 * MIB


if __name__ == "__main__":
    {"storm": trim_after_a_storm, "churn": trim_what_churn_left}[sys.argv[1]]()


@pytest.mark.parametrize("transport", ["plain", "tls"])
@pytest.mark.parametrize("ending", ["quit", "reset"])
def test_an_ended_session_is_freed_at_once_not_left_to_the_cyclic_collector(
    make_server: Callable[..., ChatServer], tls_files: TlsFiles, transport: str, ending: str
) -> None:
    """A session and its outbox, socket and decoder go as soon as the session
    ends, by reference counting: with the cyclic garbage collector off, a
    weak reference to the session dies.  (The outbox's overflow hook held the
    session in a cycle; under churn tens of thousands of ended sessions
    waited for a full collection and the server's RSS grew by half.)"""
    tls = transport == "tls"
    server = make_server(**tls_files.server_options()) if tls else make_server()
    address = server.tls_address if tls else server.address
    assert address is not None
    context = tls_files.client_context() if tls else None
    clients: list[ChatTestClient] = []

    def connect(name: str) -> ChatTestClient:
        client = ChatTestClient(address, tls=context)
        clients.append(client)
        client.register(name)
        return client

    try:
        first = connect("ann")
        assert wait_until(lambda: len(server._sessions) == 1)
        (session,) = server._sessions
        gone = weakref.ref(session)
        sock = weakref.ref(session.sock)  # the outbox holds it too: gone only if the outbox is
        del session
        gc.disable()
        if ending == "quit":
            first.send_line("/quit")
        else:
            first.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        first.close()
        assert wait_until(lambda: not server._sessions)
        # The room's newest snapshot names who last came or went (its
        # ``change``) until the next one: someone comes.
        connect("bob")
        assert wait_until(lambda: gone() is None and sock() is None), "the ended session is still alive"
    finally:
        gc.enable()
        for client in clients:
            client.close()
