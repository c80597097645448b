"""Shared fixtures: an in-process server on a free loopback port, and a small
blocking test client that speaks through the protocol module with timeouts
on every read."""

from __future__ import annotations

import datetime
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest

from server import protocol
from server.app import ChatServer
from server.config import ServerConfig

#: Every test stops the processes it starts (tests/procguard.py); pytester runs a
#: session inside a test (tests/test_procguard.py).
pytest_plugins = ["tests.procguard", "pytester"]

E = TypeVar("E")

#: Upper bound for any single wait in a test.  Generous: CI machines are shared.
READ_TIMEOUT = 10.0


class ChatTestClient:
    """A raw protocol client for tests.  Every read has a deadline."""

    def __init__(self, address: tuple[str, int], rcvbuf: int | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(READ_TIMEOUT)
        self.sock.connect(address)
        if tls is not None:  # the handshake happens here, within READ_TIMEOUT
            self.sock = tls.wrap_socket(self.sock, server_hostname=address[0])
        self.decoder = protocol.LineDecoder(protocol.DEFAULT_MAX_LINE_BYTES + protocol.SERVER_LINE_OVERHEAD)
        self.pending: list[protocol.ServerEvent] = []
        self.raw_lines: list[bytes] = []
        self.name: str | None = None
        self.closed = False

    # -- sending --------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_line(self, text: str) -> None:
        self.sock.sendall(protocol.encode_line(text))

    def say(self, text: str) -> None:
        self.sock.sendall(protocol.encode_say(text))

    # -- receiving ------------------------------------------------------------

    def _fill(self, deadline: float) -> bool:
        """Read more events; False at EOF."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no line from the server in time")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError):
            data = b""
        if not data:
            self.closed = True
            return False
        for line in self.decoder.feed(data):
            self.raw_lines.append(line)
            self.pending.append(protocol.parse_server_line(protocol.decode_text(line)))
        return True

    def next_event(self, timeout: float = READ_TIMEOUT) -> protocol.ServerEvent:
        deadline = time.monotonic() + timeout
        while not self.pending:
            if not self._fill(deadline):
                raise EOFError("server closed the connection")
        return self.pending.pop(0)

    def expect(self, kind: type[E], timeout: float = READ_TIMEOUT, skip: tuple[type, ...] = ()) -> E:
        """Next event must be ``kind`` (events of the ``skip`` types are passed over)."""
        while True:
            event = self.next_event(timeout)
            if isinstance(event, kind):
                return event
            if not isinstance(event, skip):
                raise AssertionError(f"expected {kind.__name__}, got {event!r}")

    def wait_for(self, predicate: Callable[[Any], bool], timeout: float = READ_TIMEOUT) -> Any:
        """Skip events until one matches ``predicate``."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.next_event(max(0.01, deadline - time.monotonic()))
            if predicate(event):
                return event

    def drain(self, quiet: float = 0.2) -> list[protocol.ServerEvent]:
        """Everything that arrives until the line is quiet for ``quiet`` s."""
        events = list(self.pending)
        self.pending.clear()
        while True:
            try:
                events.append(self.next_event(quiet))
            except (TimeoutError, EOFError):
                return events

    def read_until_closed(self, timeout: float = READ_TIMEOUT) -> list[protocol.ServerEvent]:
        deadline = time.monotonic() + timeout
        events = list(self.pending)
        self.pending.clear()
        while self._fill(deadline):
            events.extend(self.pending)
            self.pending.clear()
        return events

    # -- convenience ----------------------------------------------------------

    def register(self, name: str) -> protocol.Welcome:
        self.expect(protocol.Prompt)
        self.send_line(name)
        welcome = self.expect(protocol.Welcome)
        self.name = welcome.name
        return welcome

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


@dataclass(frozen=True)
class TlsFiles:
    """Test certificates (trustme): a CA, and server certificates for
    127.0.0.1 and localhost signed by it, one of them expired."""

    ca: str
    #: Private key and certificate chain in one PEM (--tls-cert and --tls-key).
    cert: str
    expired: str

    def server_options(self) -> dict[str, Any]:
        """ServerConfig fields for a TLS chat port on a free port."""
        return {"tls_port": 0, "tls_cert": self.cert, "tls_key": self.cert}

    def client_context(self, **versions: ssl.TLSVersion) -> ssl.SSLContext:
        """A client context that trusts the test CA (``maximum_version=...``)."""
        context = ssl.create_default_context(cafile=self.ca)
        for name, value in versions.items():
            setattr(context, name, value)
        return context


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    trustme = pytest.importorskip("trustme", reason="trustme is not installed (pip install -e '.[test]')")
    where = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(where / "ca.pem"))
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(where / "server.pem"))
    yesterday = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    expired = ca.issue_cert(
        "127.0.0.1", "localhost", not_before=yesterday - datetime.timedelta(days=30), not_after=yesterday
    )
    expired.private_key_and_cert_chain_pem.write_to_path(str(where / "expired.pem"))
    return TlsFiles(str(where / "ca.pem"), str(where / "server.pem"), str(where / "expired.pem"))


@pytest.fixture
def make_server() -> Iterator[Callable[..., ChatServer]]:
    """Start in-process servers with given config overrides; all are shut down."""
    servers: list[ChatServer] = []

    def start(**overrides: Any) -> ChatServer:
        server = ChatServer(ServerConfig(port=0, **overrides))
        server.start()
        servers.append(server)
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.shutdown()


@pytest.fixture
def server(make_server: Callable[..., ChatServer]) -> ChatServer:
    return make_server()


@pytest.fixture
def connect(server: ChatServer) -> Iterator[Callable[..., ChatTestClient]]:
    """Open test clients to ``server``; all are closed at the end."""
    clients: list[ChatTestClient] = []

    def open_client(name: str | None = None, **kwargs: Any) -> ChatTestClient:
        client = ChatTestClient(server.address, **kwargs)
        clients.append(client)
        if name is not None:
            client.register(name)
        return client

    try:
        yield open_client
    finally:
        for client in clients:
            client.close()


def wait_until(predicate: Callable[[], bool], timeout: float = READ_TIMEOUT, interval: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@pytest.fixture(autouse=True)
def _gevent_never_reaches_this_process() -> Iterator[None]:
    """Locust monkey-patches socket and threading (gevent) in the process that
    imports it; the Locust tests run it in subprocesses.  After every test the
    threaded server's modules must still be the real ones, so a test that
    leaks it fails itself, whatever order the files run in."""
    yield
    if "gevent.monkey" in sys.modules:  # only to look: never imported here
        from gevent import monkey

        assert not monkey.is_module_patched("socket"), "gevent patched socket in the test process"
        assert not monkey.is_module_patched("threading"), "gevent patched threading in the test process"
    assert socket.socket.__module__ == "socket"
    assert threading.Lock.__module__ in ("_thread", "threading")
