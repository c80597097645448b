"""Hostile and faulty clients: the server keeps working and loses nothing for
the healthy ones."""

from __future__ import annotations

import socket
import statistics
import struct
import subprocess
import threading
import time
from collections.abc import Callable

import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server import protocol as p
from server.app import ChatServer
from server.flood import TokenBucket, Verdict
from tests.conftest import ChatTestClient, wait_until
from tests.server.test_server_process import start_server

MakeServer = Callable[..., ChatServer]


def join(server: ChatServer, opened: list[ChatTestClient], name: str, **kwargs: object) -> ChatTestClient:
    client = ChatTestClient(server.address, **kwargs)  # type: ignore[arg-type]
    opened.append(client)
    client.register(name)
    return client


# -- bad input ------------------------------------------------------------------


def test_endless_line_without_newline_is_bounded_and_dropped(
    make_server: MakeServer, clients: list[ChatTestClient]
) -> None:
    server = make_server(max_line_bytes=1024)
    attacker, bob = join(server, clients, "attacker"), join(server, clients, "bob")
    attacker.expect(p.Joined)
    chunk = b"A" * 65536
    for _ in range(64):  # 4 MiB, never a newline
        attacker.send_raw(chunk)
    assert attacker.expect(p.Error) == p.Error("Line too long (limit 1024 bytes), dropped")
    session = next(s for s in server._sessions if s.name == "attacker")
    assert wait_until(lambda: session.decoder.buffered == 0)
    attacker.send_raw(b"tail of the long line\nback to normal\n")
    assert bob.expect(p.Message) == p.Message("attacker", "back to normal")
    assert bob.drain() == [] and attacker.drain() == []


def test_empty_and_blank_lines_are_ignored(make_server: MakeServer, clients: list[ChatTestClient]) -> None:
    server = make_server()
    alice, bob = join(server, clients, "alice"), join(server, clients, "bob")
    alice.expect(p.Joined)
    alice.send_raw(b"\n\r\n   \n\t\nreal\n")
    assert bob.expect(p.Message) == p.Message("alice", "real")
    assert bob.drain() == [] and alice.drain() == []


def test_names_cannot_impersonate_server_lines(make_server: MakeServer, clients: list[ChatTestClient]) -> None:
    server = make_server()
    client = ChatTestClient(server.address)
    clients.append(client)
    client.expect(p.Prompt)
    for fake in ["***", "*", "!", "?", "[private]", "[private"]:
        client.send_line(fake)
        assert client.expect(p.Error).message.startswith("Invalid name: name must not start with")
        client.expect(p.Prompt)


def test_names_of_invalid_utf8_are_refused_others_keep_chatting(
    make_server: MakeServer, clients: list[ChatTestClient]
) -> None:
    """Found by a fuzz storm: invalid UTF-8 decodes to U+FFFD, which is
    printable, so names made of it used to be accepted."""
    server = make_server()
    alice, bob = join(server, clients, "alice"), join(server, clients, "bob")
    alice.expect(p.Joined)
    fuzz = ChatTestClient(server.address)
    clients.append(fuzz)
    fuzz.expect(p.Prompt)
    for raw in (b"\xff\xfe\n", b"\xef\xbf\xbd\n", b"ok\x80\n"):
        fuzz.send_raw(raw)
        assert fuzz.expect(p.Error).message.startswith("Invalid name: name must be valid UTF-8")
        fuzz.expect(p.Prompt)
        alice.say("still here")
        assert bob.expect(p.Message) == p.Message("alice", "still here")
    assert server.hub.names() == ["alice", "bob"]


# -- silent and idle clients ------------------------------------------------------


def test_idle_clients_are_disconnected_active_ones_are_not(
    make_server: MakeServer, clients: list[ChatTestClient]
) -> None:
    server = make_server(idle_timeout=0.6)
    idle, active = join(server, clients, "idle"), join(server, clients, "active")
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        active.send_line("/who")
        time.sleep(0.1)
    events = idle.read_until_closed()
    assert events[-1] == p.Disconnected("idle timeout")
    assert active.wait_for(lambda e: isinstance(e, p.Left)) == p.Left("idle", "idle timeout")
    assert server.connection_count == 1


def test_keepalive_is_set_on_client_sockets(make_server: MakeServer, clients: list[ChatTestClient]) -> None:
    server = make_server(keepalive=30)
    join(server, clients, "alice")
    (session,) = server._sessions
    assert session.sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    assert session.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30


# -- floods -----------------------------------------------------------------------


def test_token_bucket_allows_bursts_delays_excess_and_flags_floods() -> None:
    bucket = TokenBucket(rate=10, burst=3, clock=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [Verdict.OK] * 3
    assert bucket.take(0.0) is Verdict.WARN and bucket.delay == pytest.approx(0.1)
    assert bucket.take(0.0) is Verdict.WAIT and bucket.delay == pytest.approx(0.2)
    assert bucket.take(0.0) is Verdict.WAIT
    assert bucket.take(0.0) is Verdict.FLOOD  # a fourth excess line beyond a burst of 3
    # After a long enough pause the bucket is full again and the episode forgotten.
    assert bucket.take(10.0) is Verdict.OK and bucket.excess == 0


def test_excess_lines_are_delayed_not_lost(make_server: MakeServer, clients: list[ChatTestClient]) -> None:
    server = make_server(rate_limit=50, rate_burst=20)
    fast, bob = join(server, clients, "fast"), join(server, clients, "bob")
    fast.expect(p.Joined)
    lines = [f"quick {i}" for i in range(35)]  # 15 over the burst: delayed, not cut off
    started = time.monotonic()
    fast.send_raw(b"".join(p.encode_say(t) for t in lines))
    assert [bob.expect(p.Message).text for _ in lines] == lines
    assert time.monotonic() - started >= 14 / 50  # fakelag really slowed it down
    assert fast.expect(p.Error).message.startswith("Flooding: the limit is 50 lines/s (bursts of 20)")
    assert fast.drain(quiet=0.3) == []


def test_a_flooder_is_warned_then_disconnected(make_server: MakeServer, clients: list[ChatTestClient]) -> None:
    server = make_server(rate_limit=20, rate_burst=10)
    flooder, bob = join(server, clients, "flooder"), join(server, clients, "bob")
    flooder.expect(p.Joined)
    flooder.send_raw(b"spam\n" * 500)
    events = flooder.read_until_closed()
    assert isinstance(events[0], p.Error) and events[0].message.startswith("Flooding")
    assert events[-1] == p.Disconnected("excess flood")
    got = bob.drain(quiet=0.5)
    assert [e for e in got if isinstance(e, p.Left)] == [p.Left("flooder", "excess flood")]
    # Burst plus at most `burst` delayed lines got through, then the cut.
    assert 10 <= sum(isinstance(e, p.Message) for e in got) <= 21


def _pinger_latencies(server: ChatServer, opened: list[ChatTestClient], tag: str, count: int = 40) -> list[float]:
    """Round trip of a line from one healthy client to another, in ms."""
    sender, receiver = join(server, opened, f"ping{tag}"), join(server, opened, f"pong{tag}")
    latencies = []
    for i in range(count):
        started = time.monotonic()
        sender.say(f"ping {i}")
        receiver.wait_for(lambda e, i=i: e == p.Message(f"ping{tag}", f"ping {i}"))
        latencies.append((time.monotonic() - started) * 1000)
        time.sleep(0.01)
    return latencies


def test_a_flooder_does_not_starve_other_clients(make_server: MakeServer, clients: list[ChatTestClient]) -> None:
    server = make_server(rate_limit=100, rate_burst=50)
    listeners = [join(server, clients, f"listener{i}") for i in range(5)]
    baseline = statistics.median(_pinger_latencies(server, clients, "a"))
    stop = threading.Event()
    kicked = []

    def flood() -> None:
        """Flood as fast as possible; when cut off, come back under a new name."""
        blob = p.encode_say("x" * 200) * 200
        n = 0
        while not stop.is_set():
            n += 1
            flooder = ChatTestClient(server.address)
            try:
                flooder.register(f"flooder{n}")
                while not stop.is_set():
                    flooder.send_raw(blob)
            except (OSError, EOFError):
                kicked.append(n)
            finally:
                flooder.close()

    def keep_reading() -> None:  # listeners keep up, as healthy clients do
        while not stop.is_set():
            for listener in listeners:
                listener.drain(quiet=0.005)

    threads = [threading.Thread(target=flood, daemon=True), threading.Thread(target=keep_reading, daemon=True)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        flooded = statistics.median(_pinger_latencies(server, clients, "b"))
    finally:
        stop.set()
        for t in threads:
            t.join(5)
    assert kicked, "the flooder was never disconnected"
    # Within 2x of the run without the flooder (plus 1 ms for timer noise on a shared machine).
    assert flooded <= 2 * baseline + 1.0, f"median {flooded:.2f} ms with flooder vs {baseline:.2f} ms without"


# -- faults -----------------------------------------------------------------------


def _reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.slow
def test_1000_resets_while_others_chat_leak_nothing_and_lose_nothing() -> None:
    proc, address = start_server("--log-level", "WARNING", "--rate-limit", "0")
    server = psutil.Process(proc.pid)
    healthy: list[ChatTestClient] = []
    try:
        sender = ChatTestClient(address)
        healthy.append(sender)
        sender.register("sender")
        receivers = [ChatTestClient(address) for _ in range(3)]
        healthy.extend(receivers)
        for i, r in enumerate(receivers):
            r.register(f"receiver{i}")
        time.sleep(0.3)
        threads_before, fds_before = server.num_threads(), server.num_fds()

        def churn() -> None:
            for i in range(1000):
                s = socket.create_connection(address, timeout=10)
                if i % 2:  # half register first, half reset before the name
                    s.sendall(f"churn{i}\n".encode())
                    s.recv(4096)
                _reset(s)

        churner = threading.Thread(target=churn)
        churner.start()
        texts = [f"msg {i}" for i in range(300)]
        received: list[list[str]] = [[] for _ in receivers]

        def read(idx: int) -> None:
            while len(received[idx]) < len(texts):
                event = receivers[idx].next_event(timeout=20)
                if isinstance(event, p.Message):
                    received[idx].append(event.text)

        readers = [threading.Thread(target=read, args=(i,)) for i in range(len(receivers))]
        for t in readers:
            t.start()
        for text in texts:
            sender.say(text)
            time.sleep(0.005)
        churner.join(60)
        for t in readers:
            t.join(30)
        assert received == [texts] * len(receivers)
        # Every thread and descriptor of the reset connections is gone again.
        assert wait_until(lambda: server.num_threads() <= threads_before, timeout=10), server.num_threads()
        assert wait_until(lambda: server.num_fds() <= fds_before, timeout=10), server.num_fds()
        sender.say("still alive")
        assert receivers[0].wait_for(lambda e: isinstance(e, p.Message)) == p.Message("sender", "still alive")
    finally:
        for c in healthy:
            c.close()
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


# -- the decoder under arbitrary input ----------------------------------------------


@settings(max_examples=300, deadline=None)
@given(chunks=st.lists(st.binary(max_size=300), max_size=30), limit=st.integers(min_value=1, max_value=64))
def test_fuzz_discarding_decoder_never_raises_and_never_holds_more_than_the_limit(
    chunks: list[bytes], limit: int
) -> None:
    decoder = p.LineDecoder(limit, discard_oversized=True)
    for chunk in chunks:
        for line in decoder.feed(chunk):
            assert len(line) <= limit and b"\n" not in line
        assert decoder.buffered <= limit + 1


@settings(max_examples=300, deadline=None)
@given(chunks=st.lists(st.binary(max_size=300), max_size=30), limit=st.integers(min_value=1, max_value=64))
def test_fuzz_strict_decoder_raises_only_line_too_long_and_keeps_lines_exact(chunks: list[bytes], limit: int) -> None:
    decoder = p.LineDecoder(limit)
    out: list[bytes] = []
    try:
        for chunk in chunks:
            out += decoder.feed(chunk)
            assert decoder.buffered <= limit + 1
    except p.LineTooLong:
        return
    stream = b"".join(chunks)
    expected = [line.removesuffix(b"\r") for line in stream.split(b"\n")[:-1]]
    assert out == expected


def test_a_registering_client_that_never_reads_cannot_stall_everyone(
    make_server: MakeServer, clients: list[ChatTestClient]
) -> None:
    """Every bad name gets an error and a new prompt; a client that never reads
    them fills its socket.  That must cost nobody else anything."""
    server = make_server(rate_limit=0, registration_timeout=30)
    alice, bob = join(server, clients, "alice"), join(server, clients, "bob")
    alice.expect(p.Joined)
    hostile = ChatTestClient(server.address, rcvbuf=4096)
    clients.append(hostile)
    hostile.send_raw(b"*\n" * 60_000)  # ~60,000 error + prompt pairs, ~5 MB, never read
    time.sleep(1.0)
    for i in range(5):
        started = time.monotonic()
        alice.say(f"still here {i}")
        assert bob.expect(p.Message, timeout=5) == p.Message("alice", f"still here {i}")
        assert time.monotonic() - started < 2.0
