"""A small blocking WebSocket test client (wsproto over a real socket; every
read has a deadline), shared by the WebSocket server tests."""

from __future__ import annotations

import socket
import ssl
import time

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    Pong,
    RejectConnection,
    Request,
    TextMessage,
)

from server import protocol
from tests.conftest import READ_TIMEOUT


class WsTestClient:
    """One WebSocket connection to the chat server's ``/ws``."""

    def __init__(
        self, address: tuple[str, int], path: str = "/ws", handshake: bool = True, tls: ssl.SSLContext | None = None
    ) -> None:
        self.sock = socket.create_connection(address, timeout=READ_TIMEOUT)
        if tls is not None:  # wss://
            self.sock = tls.wrap_socket(self.sock, server_hostname=address[0])
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.events: list[Event] = []
        self.close: CloseConnection | None = None
        if handshake:
            self.sock.sendall(self.ws.send(Request(host=f"{address[0]}:{address[1]}", target=path)))
            event = self.next_event()
            assert isinstance(event, AcceptConnection), event

    def _fill(self, deadline: float) -> bool:
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = self.sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            return False
        if not data:
            self.ws.receive_data(None)
        else:
            self.ws.receive_data(data)
        self.events.extend(self.ws.events())
        return bool(data)

    def next_event(self, timeout: float = READ_TIMEOUT) -> Event:
        deadline = time.monotonic() + timeout
        while not self.events:
            if time.monotonic() > deadline or not self._fill(deadline):
                raise TimeoutError("no WebSocket event")
        event = self.events.pop(0)
        if isinstance(event, CloseConnection):
            self.close = event
        return event

    def line(self, timeout: float = READ_TIMEOUT) -> str:
        """The next text message (one chat line)."""
        event = self.next_event(timeout)
        assert isinstance(event, TextMessage) and event.message_finished, event
        return event.data

    def expect(self, kind: type[protocol.ServerEvent], timeout: float = READ_TIMEOUT) -> protocol.ServerEvent:
        """Lines until one parses as ``kind``."""
        deadline = time.monotonic() + timeout
        while True:
            event = protocol.parse_server_line(self.line(max(0.01, deadline - time.monotonic())))
            if isinstance(event, kind):
                return event

    def send_line(self, text: str) -> None:
        self.sock.sendall(self.ws.send(Message(data=text)))

    def send_bytes(self, data: bytes) -> None:
        self.sock.sendall(self.ws.send(BytesMessage(data=data)))

    def ping(self, payload: bytes) -> Pong:
        self.sock.sendall(self.ws.send(Ping(payload=payload)))
        while True:
            event = self.next_event()
            if isinstance(event, Pong):
                return event

    def register(self, name: str) -> protocol.Welcome:
        assert isinstance(protocol.parse_server_line(self.line()), protocol.Prompt)
        self.send_line(name)
        welcome = self.expect(protocol.Welcome)
        assert isinstance(welcome, protocol.Welcome)
        return welcome

    def close_code(self, timeout: float = READ_TIMEOUT) -> tuple[int, str]:
        """Events until the server's close frame: its code and reason."""
        deadline = time.monotonic() + timeout
        while self.close is None:
            self.next_event(max(0.01, deadline - time.monotonic()))
        assert self.close is not None
        return int(self.close.code), self.close.reason

    def http_status(self) -> int:
        """The status of an HTTP answer (a request that was refused)."""
        event = self.next_event()
        assert isinstance(event, RejectConnection), event
        return event.status_code

    def shut(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def http_get(address: tuple[str, int], request: bytes) -> bytes:
    """Send ``request`` raw and read the whole answer until the server closes."""
    with socket.create_connection(address, timeout=READ_TIMEOUT) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)
