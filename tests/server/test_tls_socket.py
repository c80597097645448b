"""TlsSocket (server.tls) on its own, over a socketpair with small kernel
buffers: partial sends keep the records and report the plaintext as not
sent, the caller's retry (whole or in pieces) is never encrypted twice,
order and content survive, and the client side works the same way."""

from __future__ import annotations

import select
import socket
import ssl
import threading
from collections.abc import Iterator

import pytest

from server.tls import TlsSocket, server_context
from tests.conftest import READ_TIMEOUT, TlsFiles

#: Small kernel buffers, so a few hundred KiB fill them.
BUFFER_BYTES = 8192


@pytest.fixture
def pair(tls_files: TlsFiles) -> Iterator[tuple[TlsSocket, TlsSocket]]:
    """A server TlsSocket and a client TlsSocket, handshake done."""
    a, b = socket.socketpair()
    for sock in (a, b):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER_BYTES)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER_BYTES)
    server = TlsSocket(a, server_context(tls_files.cert, tls_files.cert), "peer")
    client = TlsSocket(b, tls_files.client_context(), "server", server_hostname="127.0.0.1")
    shaking = threading.Thread(target=client.handshake)
    shaking.start()
    server.handshake()
    shaking.join(READ_TIMEOUT)
    assert server.established and client.established
    b.settimeout(READ_TIMEOUT)  # a read that waits for bytes that never come fails the test
    try:
        yield server, client
    finally:
        server.close()
        client.close()


def read_exactly(client: TlsSocket, n: int) -> bytes:
    got = b""
    while len(got) < n:
        chunk = client.recv(65536)
        assert chunk, f"EOF after {len(got)} of {n} bytes"
        got += chunk
    return got


def read_to_the_end(client: TlsSocket) -> bytes:
    got = b""
    while chunk := client.recv(65536):
        got += chunk
    return got


def send_everything(server: TlsSocket, data: bytes, piece: int | None = None) -> None:
    """What an outbox does: offer the rest again until all is taken; with
    ``piece``, the rest in sends of at most that many bytes (as WsSocket
    hands back the tail of one frame before the frames after it)."""
    pos = 0
    poller = select.poll()
    poller.register(server.raw, select.POLLOUT)
    while pos < len(data):
        rest = data[pos:]
        taken = server.send(rest[:piece] if piece else rest)
        pos += taken
        if taken == 0:
            assert poller.poll(READ_TIMEOUT * 1000), "the reader stopped reading"


@pytest.mark.parametrize("piece", [None, 1000])
def test_partial_sends_are_finished_without_encrypting_twice(
    pair: tuple[TlsSocket, TlsSocket], piece: int | None
) -> None:
    server, client = pair
    data = bytes(range(256)) * 2048  # 512 KiB, far past the buffers
    first = server.send(data)
    assert first < len(data)
    assert server.partial_sends >= 1
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(read_to_the_end(client)))
    reader.start()
    send_everything(server, data[first:], piece)
    server.shutdown(socket.SHUT_WR)  # close_notify: the reader's end
    reader.join(READ_TIMEOUT)
    assert received, "the reader did not finish"
    assert len(received[0]) == len(data)
    assert received[0] == data


def test_lines_before_the_handshake_wait_for_it(tls_files: TlsFiles) -> None:
    a, b = socket.socketpair()
    server = TlsSocket(a, server_context(tls_files.cert, tls_files.cert), "peer")
    assert server.send(b"? Enter your username:\n") == len(b"? Enter your username:\n")  # held
    client = tls_files.client_context().wrap_socket(b, server_hostname="127.0.0.1", do_handshake_on_connect=False)
    client.settimeout(READ_TIMEOUT)
    shaking = threading.Thread(target=client.do_handshake)
    shaking.start()
    server.handshake()
    shaking.join(READ_TIMEOUT)
    assert client.recv(100) == b"? Enter your username:\n"
    client.sendall(b"alice\n")
    assert server.recv(100) == b"alice\n"
    server.close()
    assert client.recv(100) == b""  # close_notify
    client.close()


def test_sendall_waits_for_the_reader(pair: tuple[TlsSocket, TlsSocket]) -> None:
    server, client = pair
    data = b"z" * 300_000
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(read_exactly(client, len(data))))
    reader.start()
    server.sendall(data)
    reader.join(READ_TIMEOUT)
    assert received == [data]


def test_after_close_notify_a_send_is_a_broken_pipe(pair: tuple[TlsSocket, TlsSocket]) -> None:
    server, client = pair
    server.shutdown(socket.SHUT_WR)
    assert client.recv(100) == b""
    with pytest.raises(BrokenPipeError):
        server.send(b"too late\n")


def test_garbage_after_the_handshake_is_an_ssl_error(pair: tuple[TlsSocket, TlsSocket]) -> None:
    server, client = pair
    client.raw.sendall(b"\x17\x03\x03\x00\x10" + b"\x00" * 16)  # an application record that does not decrypt
    with pytest.raises(ssl.SSLError):
        server.recv(100)
