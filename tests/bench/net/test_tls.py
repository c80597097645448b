"""The harness's client side of TLS (:mod:`bench.net.tls`) over real loopback
sockets, against a small TLS server in a thread (a trustme certificate):

* kernel receive stamps under TLS: a line the server sent long before the
  harness read it is stamped with the ciphertext's arrival, not the read
  (the stamp comes from the raw ``recvmsg_into``; decryption is after it);
* records split across reads and many records in one read decrypt whole;
* a server that speaks a plaintext line first (NATS's INFO) and TLS after;
* session resumption; failures said in one line (an untrusted certificate,
  a plaintext server).
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trustme

from bench.net import stamps
from bench.net.rx import StampedReader
from bench.net.tls import TlsChannel, TlsFailure, TlsOptions, TlsStream

TIMEOUT = 10.0


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def server_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


@contextmanager
def tls_server(
    context: ssl.SSLContext | None, serve: Callable[[socket.socket], None], greeting: bytes = b""
) -> Iterator[tuple[str, int]]:
    """A one-connection server: ``greeting`` in plaintext, then TLS (with
    ``context``), then ``serve`` on the connection; every wait bounded."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(TIMEOUT)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            conn, _ = listener.accept()
            conn.settimeout(TIMEOUT)
            with conn:
                if greeting:
                    conn.sendall(greeting)
                if context is None:
                    serve(conn)
                    return
                with context.wrap_socket(conn, server_side=True) as tls:
                    serve(tls)
        except (OSError, ssl.SSLError) as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[:2]
    finally:
        thread.join(TIMEOUT)
        listener.close()


def connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


@pytest.mark.skipif(not stamps.supported(), reason="kernel receive stamps: Linux only")
def test_a_line_read_late_is_stamped_when_its_ciphertext_arrived(ca: trustme.CA, ca_file: str) -> None:
    sent_at: list[int] = []
    go = threading.Event()

    def serve(tls: socket.socket) -> None:
        assert go.wait(TIMEOUT)
        sent_at.append(time.monotonic_ns())
        tls.sendall(b"hello over tls\n")
        tls.recv(1)  # until the client closes

    with tls_server(server_context(ca), serve) as address:
        stream = TlsStream.wrap(connect(address), TlsOptions(ca_file=ca_file), address[0])
        reader = StampedReader(kernel=True)
        assert reader.enable(stream)
        time.sleep(0.3)  # the kernel's stamping is on before the line comes (see stamps.enable)
        go.set()
        time.sleep(0.3)  # the line waits in the socket, read 300 ms late
        read = reader.read(stream)
        stream.close()
    assert read.data == b"hello over tls\n"
    assert reader.unstamped_reads == 0
    late_ms = (read.arrival_ns - sent_at[0]) / 1e6
    assert 0 <= late_ms < 100, f"stamped {late_ms:.1f} ms after the send: the read's time, not the arrival"
    reader.housekeeping()
    assert reader.receive_lag.max >= 250_000  # the late read is the harness's read lag, measured apart


def test_records_split_and_batched_decrypt_whole(ca: trustme.CA, ca_file: str) -> None:
    lines = [f"line {i} ".encode() + b"x" * (i * 37 % 3000) + b"\n" for i in range(300)]

    def serve(tls: socket.socket) -> None:
        for line in lines:  # one record each: many per read
            tls.sendall(line)
        tls.sendall(b"y" * 100_000 + b"\n")  # several records, more than one read
        tls.recv(1)

    with tls_server(server_context(ca), serve) as address:
        stream = TlsStream.wrap(connect(address), TlsOptions(ca_file=ca_file), address[0])
        got = b""
        want = sum(map(len, lines)) + 100_001
        while len(got) < want:
            chunk = stream.recv(4096)  # smaller than a record: the rest is kept for the next call
            assert chunk, "closed early"
            got += chunk
        stream.close()
    assert got == b"".join(lines) + b"y" * 100_000 + b"\n"


def test_tls_after_a_plaintext_greeting_line(ca: trustme.CA, ca_file: str) -> None:
    def serve(tls: socket.socket) -> None:
        assert tls.recv(100) == b"CONNECT\r\n"
        tls.sendall(b"+OK\r\n")

    greeting = b'INFO {"tls_required":true}\r\n'
    with tls_server(server_context(ca), serve, greeting=greeting) as address:
        stream = TlsStream.wrap(connect(address), TlsOptions(ca_file=ca_file), address[0], greeting_first=True)
        stream.sendall(b"CONNECT\r\n")
        assert stream.recv(100) == b"+OK\r\n"
        stream.close()


def test_a_session_offered_again_is_resumed(ca: trustme.CA, ca_file: str) -> None:
    context = server_context(ca)
    options = TlsOptions(ca_file=ca_file)

    def serve(tls: socket.socket) -> None:
        tls.sendall(b"hi\n")  # the tickets (TLS 1.3) come before it
        tls.recv(1)

    with tls_server(context, serve) as address:
        first = TlsStream.wrap(connect(address), options, address[0])
        assert first.recv(10) == b"hi\n"
        session = first.channel.session
        first.close()
    assert session is not None and session.has_ticket
    with tls_server(context, serve) as address:
        second = TlsStream.wrap(connect(address), options, address[0], session=session)
        assert second.channel.session_reused
        assert second.recv(10) == b"hi\n"
        second.close()


def test_an_untrusted_certificate_is_one_clear_line(ca: trustme.CA, tmp_path: Path) -> None:
    other = tmp_path / "other.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    with tls_server(server_context(ca), lambda tls: None) as address, pytest.raises(TlsFailure) as failed:
        TlsStream.wrap(connect(address), TlsOptions(ca_file=str(other)), address[0])
    assert "not trusted" in str(failed.value) and "--ca FILE" in str(failed.value)


def test_a_wrong_name_is_refused_unless_insecure(ca: trustme.CA, ca_file: str) -> None:
    wrong_name = TlsOptions(ca_file=ca_file, server_name="elsewhere.test")
    with tls_server(server_context(ca), lambda tls: None) as address, pytest.raises(TlsFailure, match="not trusted"):
        TlsStream.wrap(connect(address), wrong_name, address[0])
    with tls_server(server_context(ca), lambda tls: tls.sendall(b"ok\n")) as address:
        stream = TlsStream.wrap(connect(address), TlsOptions(insecure=True), address[0])
        assert stream.recv(10) == b"ok\n"
        stream.close()


def test_a_plaintext_server_is_said_not_to_speak_tls(ca_file: str) -> None:
    def serve(conn: socket.socket) -> None:
        conn.sendall(b"? Enter your username:\n")
        conn.recv(1000)

    with tls_server(None, serve) as address, pytest.raises(TlsFailure, match="does not speak TLS"):
        TlsStream.wrap(connect(address), TlsOptions(ca_file=ca_file), address[0])


def test_the_channel_is_sans_io(ca: trustme.CA, ca_file: str) -> None:
    """Two channels' worth of memory BIOs talk to each other with no socket."""
    server_in, server_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = server_context(ca).wrap_bio(server_in, server_out, server_side=True)
    client = TlsChannel(TlsOptions(ca_file=ca_file).context(), "127.0.0.1")
    to_server = client.start()
    while not client.established:
        server_in.write(to_server)
        try:
            server.do_handshake()
        except ssl.SSLWantReadError:
            pass
        to_server = client.handshake(server_out.read())
    server_in.write(to_server)
    server.do_handshake()
    server_in.write(client.encrypt(b"ping\n"))
    assert server.read(100) == b"ping\n"
    server.write(b"pong\n")
    records = server_out.read()
    assert client.decrypt(records[:5]) == b""  # a record still arriving
    assert client.decrypt(records[5:]) == b"pong\n"
    assert client.handshake_ns > 0 and client.version is not None and client.version.startswith("TLSv1.")
