"""The one blocking client of the harness: connect, register, read lines.

:class:`WireClient` drives a protocol adapter's I/O-free registration state
machine (``wire.get(protocol).registration(name)``: a
:class:`~bench.wire.Registration` answering each received line with a
:class:`~bench.wire.Step`) over a blocking socket with one deadline, and
afterwards hands out received lines one at a time.  The fan-out gate, the
one-broadcast study, the Locust users (gevent makes the same blocking calls
cooperative) and tests use it; the swarm worker drives the same state
machine from its event loop.

Over TLS (``tls``: :class:`bench.net.tls.TlsOptions`) its socket is a
:class:`bench.net.tls.TlsStream`: a ``socket.socket`` whose reads decrypt
after the raw, kernel-stamped read, so every caller (and
:class:`bench.net.rx.StampedReader`) uses it as it uses a plain one.  A
registration logs in with the :class:`~bench.wire.credentials.Credentials`
it is given.
"""

from __future__ import annotations

import collections
import socket
import time
from dataclasses import dataclass

from bench import wire
from bench.net.tls import TlsFailure, TlsOptions, TlsStream
from bench.wire.credentials import Credentials, Logins

#: Seconds for connecting plus registering, unless the caller says otherwise:
#: generous, since a loaded 2-core machine may take a while to accept.
REGISTER_TIMEOUT_S = 10.0
#: Bytes one ``recv`` may return.
RECV_BYTES = 65536


@dataclass(frozen=True, slots=True)
class Access:
    """How blocking clients reach and log in to a target: TLS settings
    (None: plaintext) and logins (None: none; client ``i`` logs in with
    ``logins.for_client(i)``)."""

    tls: TlsOptions | None = None
    logins: Logins | None = None

    def login(self, index: int) -> Credentials | None:
        return self.logins.for_client(index) if self.logins is not None else None


#: Plaintext, no login.
PLAIN = Access()


class ClientError(Exception):
    """Connecting, registering or reading failed; the message says why."""


class RegistrationRefused(ClientError):
    """The server refused the registration (a name taken, a disconnect); the
    connection may still be open for another attempt."""


class WireClient:
    """One blocking connection: its socket, its line decoder and the lines
    received but not yet taken."""

    def __init__(
        self, sock: socket.socket, name: str, adapter: wire.Adapter, decoder: wire.Decoder | None = None
    ) -> None:
        self.sock = sock
        self.name = name
        self.adapter = adapter
        self.decoder: wire.Decoder = decoder if decoder is not None else adapter.decoder()
        self._lines: collections.deque[bytes] = collections.deque()

    @classmethod
    def open(
        cls,
        address: tuple[str, int],
        protocol: str = "chat",
        timeout: float = REGISTER_TIMEOUT_S,
        rcvbuf: int | None = None,
        decoder: wire.Decoder | None = None,
        tls: TlsOptions | None = None,
    ) -> WireClient:
        """A connected socket (TCP_NODELAY, timeout set; with ``tls``, the
        handshake done), not registered yet.  A failed handshake is a
        :class:`ClientError` saying why."""
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        adapter = wire.get(protocol)
        try:
            if rcvbuf is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(timeout)
            sock.connect(address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls is not None:
                sock = TlsStream.wrap(sock, tls, address[0], greeting_first=adapter.tls_greeting_first)
        except TlsFailure as exc:
            sock.close()
            raise ClientError(str(exc)) from None
        except BaseException:
            sock.close()
            raise
        return cls(sock, "", adapter, decoder)

    @classmethod
    def connect(
        cls,
        address: tuple[str, int],
        name: str,
        *,
        protocol: str = "chat",
        timeout: float = REGISTER_TIMEOUT_S,
        tls: TlsOptions | None = None,
        credentials: Credentials | None = None,
    ) -> WireClient:
        """Connect (over TLS with ``tls``) and register as ``name`` (logging
        in with ``credentials``), all within ``timeout`` seconds; the socket
        is closed if anything fails."""
        deadline = time.monotonic() + timeout
        client = cls.open(address, protocol, timeout, tls=tls)
        try:
            client.register(name, deadline, credentials=credentials)
        except BaseException:
            client.close()
            raise
        return client

    def register(
        self,
        name: str,
        deadline: float,
        *,
        sender_only: bool = False,
        credentials: Credentials | None = None,
        rooms: tuple[str, ...] = ("",),
    ) -> None:
        """Drive the adapter's registration for ``name`` (logging in with
        ``credentials``) until it is done; :class:`RegistrationRefused` if the
        server refuses it.  ``sender_only``: a connection that only sends
        (:meth:`bench.wire.Adapter.sender_registration`); ``rooms``: a
        workload's rooms to join (``("",)``: the target's one room)."""
        self.name = name
        adapter = self.adapter
        if sender_only:
            registration = adapter.sender_registration(name, credentials, rooms)
        else:
            registration = adapter.registration(name, credentials, rooms)
        greeting = registration.connected()
        if greeting:
            self.sock.sendall(greeting)
        while True:
            step = registration.line(self.next_line(deadline))
            if step.send:
                self.sock.sendall(step.send)
            if step.error is not None:
                raise RegistrationRefused(f"{name}: {step.error}")
            if step.done:
                return

    def next_line(self, deadline: float) -> bytes:
        """The next received line, reading until ``deadline`` (monotonic)."""
        while not self._lines:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ClientError(f"{self.name}: timed out waiting for the target")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(RECV_BYTES)
            except TimeoutError:
                continue
            except TlsFailure as exc:
                raise ClientError(f"{self.name}: {exc}") from None
            if not data:
                raise ClientError(f"{self.name}: the target closed the connection")
            self._lines.extend(self.decoder.feed(data))
        return self._lines.popleft()

    def take_lines(self) -> list[bytes]:
        """Lines received but not taken yet (e.g. with the welcome)."""
        lines = list(self._lines)
        self._lines.clear()
        return lines

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def discard_pending(sock: socket.socket, timeout: float | None = None) -> None:
    """Drop whatever ``sock`` has received so far (a welcome, join notices),
    without waiting; then give it ``timeout`` (None: blocking)."""
    sock.setblocking(False)
    try:
        while sock.recv(RECV_BYTES):
            pass
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(timeout)
