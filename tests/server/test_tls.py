"""TLS on the chat port and on the WebSocket port (server.tls), over real
sockets with trustme's test certificates: chat between TLS and plaintext
clients under every fan-out strategy, partial writes to a slow TLS reader,
session resumption, and each bad input (plaintext to the TLS port, TLS to
the plaintext port, a stalled handshake, a client that refuses our
certificate) ending only that connection while the others chat on."""

from __future__ import annotations

import logging
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from server import protocol as p
from server.app import ChatServer
from server.tls import PLAINTEXT_CHAT_ANSWER
from tests.conftest import READ_TIMEOUT, ChatTestClient, TlsFiles, wait_until

MakeServer = Callable[..., ChatServer]


def tls_server(make_server: MakeServer, tls_files: TlsFiles, **overrides: object) -> ChatServer:
    return make_server(**tls_files.server_options(), **overrides)


def alice_over_tls_bob_plain(
    server: ChatServer, opened: list[ChatTestClient], tls_files: TlsFiles
) -> tuple[ChatTestClient, ChatTestClient]:
    """Two registered clients, alice on the TLS port and bob on the plaintext one; alice has seen bob join."""
    alice = join(server.tls_address, opened, "alice", tls=tls_files.client_context())
    bob = join(server.address, opened, "bob")
    alice.expect(p.Joined)
    return alice, bob


def join(address: tuple[str, int] | None, opened: list[ChatTestClient], name: str, **kwargs: object) -> ChatTestClient:
    assert address is not None
    client = ChatTestClient(address, **kwargs)  # type: ignore[arg-type]
    opened.append(client)
    if name:
        client.register(name)
    return client


def client_hello() -> bytes:
    """A real ClientHello (the first flight of a TLS client)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def assert_still_chatting(a: ChatTestClient, b: ChatTestClient, text: str) -> None:
    """``a`` and ``b`` (one of them over TLS) still reach each other."""
    assert a.name is not None and b.name is not None
    a.say(text)
    assert b.expect(p.Message, skip=(p.Joined, p.Left)) == p.Message(a.name, text)
    b.say(text + " back")
    assert a.expect(p.Message, skip=(p.Joined, p.Left)) == p.Message(b.name, text + " back")


# -- chat over TLS ------------------------------------------------------------------


@pytest.mark.parametrize("fanout", ["queued", "threads", "direct"])
def test_tls_and_plaintext_clients_chat_in_one_room(
    make_server: MakeServer, tls_files: TlsFiles, clients: list[ChatTestClient], fanout: str
) -> None:
    server = tls_server(make_server, tls_files, fanout=fanout)
    tls = tls_files.client_context()
    alice = join(server.tls_address, clients, "alice", tls=tls)
    bob = join(server.address, clients, "bob")
    assert alice.expect(p.Joined) == p.Joined("bob")
    carol = join(server.tls_address, clients, "carol", tls=tls)
    assert alice.expect(p.Joined) == p.Joined("carol") and bob.expect(p.Joined) == p.Joined("carol")
    assert isinstance(alice.sock, ssl.SSLSocket) and alice.sock.version() in ("TLSv1.3", "TLSv1.2")

    alice.say("over TLS, ünïcode")
    assert bob.expect(p.Message) == p.Message("alice", "over TLS, ünïcode")
    assert carol.expect(p.Message) == p.Message("alice", "over TLS, ünïcode")
    bob.say("in the clear")
    assert alice.expect(p.Message) == p.Message("bob", "in the clear")
    assert carol.expect(p.Message) == p.Message("bob", "in the clear")
    carol.send_line("/msg alice psst")
    assert alice.expect(p.Private) == p.Private("carol", "psst")
    alice.send_line("/who")
    assert alice.expect(p.Online) == p.Online(("alice", "bob", "carol"))

    carol.send_line("/quit")
    assert carol.read_until_closed()[-1] == p.Disconnected("bye")
    assert alice.expect(p.Left) == p.Left("carol", "quit")
    assert bob.expect(p.Left) == p.Left("carol", "quit")


@pytest.mark.parametrize("fanout", ["queued", "threads"])
def test_a_burst_to_a_slow_tls_reader_arrives_whole_and_in_order(
    make_server: MakeServer, tls_files: TlsFiles, clients: list[ChatTestClient], fanout: str
) -> None:
    """4 MB to a TLS reader whose receive buffer is 4 KiB and who does not
    read yet (more than the kernel's buffers hold): the server's sends are
    partial (records kept, plaintext left queued, EPOLLOUT) while a
    plaintext reader gets everything at once; then the slow one reads every
    line, whole and in order."""
    server = tls_server(make_server, tls_files, fanout=fanout, rate_limit=0, send_queue_bytes=16 << 20)
    slow = join(server.tls_address, clients, "slow", tls=tls_files.client_context(), rcvbuf=4096)
    fast = join(server.address, clients, "fast")
    sender = join(server.address, clients, "sender")
    slow.expect(p.Joined), slow.expect(p.Joined), fast.expect(p.Joined)
    count, pad = 2000, "x" * 2000
    sender.send_raw(b"".join(p.encode_say(f"{i:04d} {pad}") for i in range(count)))
    for i in range(count):
        assert fast.expect(p.Message) == p.Message("sender", f"{i:04d} {pad}")
    tls_socket = next(s.sock for s in server._sessions if s.name == "slow")
    assert wait_until(lambda: getattr(tls_socket, "partial_sends", 0) > 0), "the kernel took every send whole"
    for i in range(count):
        assert slow.expect(p.Message) == p.Message("sender", f"{i:04d} {pad}")
    assert_still_chatting(slow, fast, "after the burst")


def test_a_tls_client_that_stops_reading_is_cut_off_alone(
    make_server: MakeServer, tls_files: TlsFiles, clients: list[ChatTestClient]
) -> None:
    server = tls_server(make_server, tls_files, rate_limit=0, send_queue_bytes=256 * 1024)
    join(server.tls_address, clients, "stuck", tls=tls_files.client_context(), rcvbuf=4096)
    fast = join(server.tls_address, clients, "fast", tls=tls_files.client_context())
    sender = join(server.address, clients, "sender")
    fast.expect(p.Joined)
    # ~4 MB: far more than the stuck client's socket buffers plus its send queue.
    sender.send_raw(b"".join(p.encode_say(f"{i:04d} {'y' * 2000}") for i in range(2000)))
    events = [fast.next_event() for _ in range(2001)]
    texts = [e.text[:4] for e in events if isinstance(e, p.Message)]
    assert texts == [f"{i:04d}" for i in range(2000)]
    assert [e for e in events if isinstance(e, p.Left)] == [p.Left("stuck", "send queue exceeded")]
    assert_still_chatting(fast, sender, "still here")


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
def test_sessions_resume_with_a_ticket(
    make_server: MakeServer, tls_files: TlsFiles, clients: list[ChatTestClient], version: ssl.TLSVersion
) -> None:
    server = tls_server(make_server, tls_files)
    context = tls_files.client_context(maximum_version=version)
    first = join(server.tls_address, clients, "first", tls=context)
    assert isinstance(first.sock, ssl.SSLSocket)
    assert first.sock.version() == version.name.replace("v1_", "v1.")
    first.send_line("/who")  # TLS 1.3 tickets come after the handshake: read past them
    first.expect(p.Online)
    ticket = first.sock.session
    assert ticket is not None
    assert not first.sock.session_reused
    raw = socket.create_connection(server.tls_address, timeout=READ_TIMEOUT)
    again = context.wrap_socket(raw, server_hostname="127.0.0.1", session=ticket)
    try:
        assert again.session_reused
        assert again.recv(100) == p.encode_prompt()
        tls_sessions = [s.sock for s in server._sessions if s.sock.__class__.__name__ == "TlsSocket"]
        assert wait_until(lambda: any(getattr(t, "session_reused", False) for t in tls_sessions))
    finally:
        again.close()


# -- bad input -----------------------------------------------------------------------


def test_plaintext_on_the_tls_port_gets_one_line_and_is_closed(
    make_server: MakeServer, tls_files: TlsFiles, clients: list[ChatTestClient], caplog: pytest.LogCaptureFixture
) -> None:
    server = tls_server(make_server, tls_files)
    alice, bob = alice_over_tls_bob_plain(server, clients, tls_files)
    with caplog.at_level(logging.WARNING, logger="server.tls"):
        for attempt in (b"mallory\n", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"):
            plain = socket.create_connection(server.tls_address, timeout=READ_TIMEOUT)
            plain.sendall(attempt)
            answer = b""
            while chunk := plain.recv(4096):
                answer += chunk
            plain.close()
            assert answer == PLAINTEXT_CHAT_ANSWER
            assert p.parse_server_line(answer.decode().rstrip("\n")) == p.Disconnected(
                "this port speaks TLS (chat-client --tls)"
            )
            assert_still_chatting(alice, bob, f"after {attempt[:7]!r}")
    assert "plaintext on the TLS port" in caplog.text
    assert wait_until(lambda: server.connection_count == 2)


def test_tls_on_the_plaintext_port_is_closed(
    make_server: MakeServer, tls_files: TlsFiles, clients: list[ChatTestClient], caplog: pytest.LogCaptureFixture
) -> None:
    server = tls_server(make_server, tls_files)
    alice, bob = alice_over_tls_bob_plain(server, clients, tls_files)
    with caplog.at_level(logging.WARNING, logger="server.session"):
        raw = socket.create_connection(server.address, timeout=READ_TIMEOUT)
        with pytest.raises(ssl.SSLError, match=r"WRONG_VERSION_NUMBER|record layer|wrong version"):
            tls_files.client_context().wrap_socket(raw, server_hostname="127.0.0.1")
        raw.close()
        assert wait_until(lambda: "a TLS handshake on the plaintext port" in caplog.text)
    assert_still_chatting(alice, bob, "undisturbed")
    assert wait_until(lambda: server.connection_count == 2)


@pytest.mark.parametrize("sent", ["nothing", "half a ClientHello"])
def test_a_stalled_handshake_ends_at_the_registration_timeout(
    make_server: MakeServer, tls_files: TlsFiles, clients: list[ChatTestClient], sent: str
) -> None:
    server = tls_server(make_server, tls_files, registration_timeout=0.6)
    alice, bob = alice_over_tls_bob_plain(server, clients, tls_files)
    assert server.tls_address is not None
    staller = socket.create_connection(server.tls_address, timeout=READ_TIMEOUT)
    started = time.monotonic()
    if sent != "nothing":
        hello = client_hello()
        staller.sendall(hello[: len(hello) // 2])
    assert_still_chatting(alice, bob, "while one stalls")
    assert staller.recv(4096) == b""  # closed, without a byte of TLS or plaintext
    waited = time.monotonic() - started
    staller.close()
    assert 0.5 < waited < 5.0, waited
    assert_still_chatting(alice, bob, "after it was cut")
    assert wait_until(lambda: server.connection_count == 2)


def test_a_client_that_refuses_our_certificate_is_logged(
    make_server: MakeServer, tls_files: TlsFiles, clients: list[ChatTestClient], caplog: pytest.LogCaptureFixture
) -> None:
    server = tls_server(make_server, tls_files)
    alice, bob = alice_over_tls_bob_plain(server, clients, tls_files)
    assert server.tls_address is not None
    with caplog.at_level(logging.WARNING, logger="server.tls"):
        raw = socket.create_connection(server.tls_address, timeout=READ_TIMEOUT)
        with pytest.raises(ssl.SSLCertVerificationError):
            ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")  # no test CA
        raw.close()
        assert wait_until(lambda: "the client does not trust our certificate" in caplog.text)
    assert_still_chatting(alice, bob, "undisturbed")


# -- WebSocket over TLS ---------------------------------------------------------------


def test_the_chat_page_over_https_and_chat_over_wss(
    make_server: MakeServer, tls_files: TlsFiles, clients: list[ChatTestClient]
) -> None:
    from tests.server.wsclient import WsTestClient

    server = make_server(wss_port=0, tls_cert=tls_files.cert, tls_key=tls_files.cert, ws_port=0)
    assert server.wss_address is not None and server.ws_address is not None
    context = tls_files.client_context()
    page = context.wrap_socket(
        socket.create_connection(server.wss_address, timeout=READ_TIMEOUT), server_hostname="127.0.0.1"
    )
    page.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    response = b""
    while chunk := page.recv(65536):
        response += chunk
    page.close()
    assert response.startswith(b"HTTP/1.1 200 ") and b"<title>chat</title>" in response

    ann = WsTestClient(server.wss_address, tls=context)
    ann.register("ann")
    bob = join(server.address, clients, "bob")
    assert ann.expect(p.Joined) == p.Joined("bob")
    ann.send_line("hello over wss")
    assert bob.expect(p.Message) == p.Message("ann", "hello over wss")
    bob.say("hello back")
    assert ann.expect(p.Message) == p.Message("bob", "hello back")

    plain = socket.create_connection(server.wss_address, timeout=READ_TIMEOUT)
    plain.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    answer = plain.recv(4096)
    plain.close()
    assert answer.startswith(b"HTTP/1.1 400 Bad Request") and b"use https:// or wss://" in answer

    raw = socket.create_connection(server.ws_address, timeout=READ_TIMEOUT)
    with pytest.raises(ssl.SSLError):
        context.wrap_socket(raw, server_hostname="127.0.0.1")
    raw.close()
    bob.say("still flowing")
    assert ann.expect(p.Message) == p.Message("bob", "still flowing")
    ann.sock.close()


# -- configuration -----------------------------------------------------------------------


def test_tls_only_opens_no_plaintext_port(
    make_server: MakeServer, tls_files: TlsFiles, clients: list[ChatTestClient]
) -> None:
    server = tls_server(make_server, tls_files, tls_only=True)
    assert server.address == server.tls_address
    assert len(server._listeners) == 1
    alice = join(server.address, clients, "alice", tls=tls_files.client_context())
    assert alice.name == "alice"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tls-port", "0"], "need --tls-cert and --tls-key"),
        (["--tls-cert", "x.pem", "--tls-key", "x.pem"], "need --tls-port or --wss-port"),
        (["--tls-only"], "--tls-only needs --tls-port"),
    ],
)
def test_tls_options_that_do_not_fit_are_usage_errors(args: list[str], message: str) -> None:
    out = subprocess.run([sys.executable, "-m", "server", *args], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert message in out.stderr


def test_a_certificate_that_does_not_load_is_one_line_and_exit_2(tmp_path: object, tls_files: TlsFiles) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "server",
            "--port",
            "0",
            "--tls-port",
            "0",
            "--tls-cert",
            tls_files.ca,
            "--tls-key",
            tls_files.ca,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "cannot load the TLS certificate" in errors[0], out.stderr
    assert "Traceback" not in out.stderr


def test_the_server_logs_its_tls_port_and_serves_it(tls_files: TlsFiles) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server",
            "--port",
            "0",
            "--tls-port",
            "0",
            "--tls-cert",
            tls_files.cert,
            "--tls-key",
            tls_files.cert,
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        startup = [proc.stderr.readline() for _ in range(3)]
        assert "listening on 127.0.0.1:" in startup[0]
        assert "tls on 127.0.0.1:" in startup[1], startup
        assert "tls_port=0" in startup[2] and "tls_cert=" in startup[2]
        port = int(startup[1].rsplit(":", 1)[1])
        client = ChatTestClient(("127.0.0.1", port), tls=tls_files.client_context())
        try:
            assert client.register("viaprocess") == p.Welcome("viaprocess", ("viaprocess",))
        finally:
            client.close()
    finally:
        proc.terminate()
        proc.wait(10)
