"""The server's WebSocket framing in memory: frames checked by wsproto's
client decoder, every partial-send cut, close frames, and WsSocket over a
socket pair whose buffers fill up."""

from __future__ import annotations

import socket

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Ping, Request, TextMessage

from server.wsframes import DONTWAIT, WsSocket, close_frame, frame_lines, split_taken

LINES = [b"a: hi", b"", b"b: " + b"x" * 200, "c: caf\u00e9".encode(), b"d: " + b"y" * 70_000]


def client_side() -> WSConnection:
    """A wsproto client that has completed its handshake."""
    client = WSConnection(ConnectionType.CLIENT)
    server = WSConnection(ConnectionType.SERVER)
    server.receive_data(client.send(Request(host="x", target="/ws")))
    list(server.events())
    client.receive_data(server.send(AcceptConnection()))
    assert isinstance(next(client.events()), AcceptConnection)
    return client


def decode(client: WSConnection, data: bytes) -> list[bytes]:
    client.receive_data(data)
    out: list[bytes] = []
    parts: list[str] = []
    for event in client.events():
        assert isinstance(event, TextMessage)
        parts.append(event.data)
        if event.message_finished:
            out.append("".join(parts).encode())
            parts = []
    return out


def test_each_line_is_one_text_frame_that_wsproto_reads() -> None:
    block = b"".join(line + b"\n" for line in LINES)
    assert decode(client_side(), frame_lines(block)) == LINES
    assert decode(client_side(), frame_lines(b"no newline")) == [b"no newline"]


def test_split_taken_accounts_for_every_cut() -> None:
    block = b"".join(line + b"\n" for line in LINES[:4])
    frames = frame_lines(block)
    for taken in range(len(frames) + 1):
        raw, tail, tail_raw = split_taken(block, taken)
        # What went out, the tail, then the rest framed again: exactly the frames.
        rest = block[raw + tail_raw :]
        assert frames[:taken] + tail + frame_lines(rest) == frames, taken
        assert raw == 0 or block[raw - 1 : raw] == b"\n"


def test_close_frames_carry_the_code_and_a_cut_reason() -> None:
    client = client_side()
    client.receive_data(close_frame(1008, "excess flood"))
    event = next(client.events())
    assert isinstance(event, CloseConnection) and (event.code, event.reason) == (1008, "excess flood")
    long = close_frame(1000, "\u00e9" * 100)
    assert len(long) <= 2 + 125


def test_ws_socket_finishes_a_half_sent_frame_before_anything_else() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        b.setblocking(False)
        wsock = WsSocket(a)
        wsock.open(b"")
        client = client_side()
        block = b"".join(b"line %d " % i + b"z" * 300 + b"\n" for i in range(200))
        received = bytearray()
        pending = block
        while pending:
            taken = wsock.send(pending, DONTWAIT)
            pending = pending[taken:]
            wsock.control(b"\x89\x00")  # a ping between frames, never inside one
            try:
                while data := b.recv(65536):
                    received += data
            except BlockingIOError:
                pass
        wsock.send(b"", DONTWAIT)
        try:
            while data := b.recv(65536):
                received += data
        except BlockingIOError:
            pass
        client.receive_data(bytes(received))
        lines: list[bytes] = []
        parts: list[str] = []
        for event in client.events():
            if isinstance(event, TextMessage):
                parts.append(event.data)
                if event.message_finished:
                    lines.append("".join(parts).encode())
                    parts = []
            else:
                assert isinstance(event, Ping)
        assert lines == block.splitlines()


@pytest.mark.parametrize("n", [0, 125, 126, 65535, 65536])
def test_frame_lengths_at_the_header_boundaries(n: int) -> None:
    line = b"q" * n
    assert decode(client_side(), frame_lines(line + b"\n")) == [line]
