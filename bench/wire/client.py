"""The one blocking client of the harness: connect, register, read lines.

:class:`WireClient` drives a protocol adapter's I/O-free registration state
machine (``wire.get(protocol).registration(name)``: a
:class:`~bench.wire.Registration` answering each received line with a
:class:`~bench.wire.Step`) over a blocking socket with one deadline, and
afterwards hands out received lines one at a time.  The fan-out gate, the
one-broadcast study, the Locust users (gevent makes the same blocking calls
cooperative) and tests use it; the swarm worker drives the same state
machine from its event loop.
"""

from __future__ import annotations

import collections
import socket
import time

from bench import wire

#: Seconds for connecting plus registering, unless the caller says otherwise:
#: generous, since a loaded 2-core machine may take a while to accept.
REGISTER_TIMEOUT_S = 10.0
#: Bytes one ``recv`` may return.
RECV_BYTES = 65536


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
    ) -> WireClient:
        """A connected socket (TCP_NODELAY, timeout set), not registered yet."""
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if rcvbuf is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(timeout)
            sock.connect(address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except BaseException:
            sock.close()
            raise
        return cls(sock, "", wire.get(protocol), decoder)

    @classmethod
    def connect(
        cls,
        address: tuple[str, int],
        name: str,
        *,
        protocol: str = "chat",
        timeout: float = REGISTER_TIMEOUT_S,
        rcvbuf: int | None = None,
        decoder: wire.Decoder | None = None,
    ) -> WireClient:
        """Connect and register as ``name``, all within ``timeout`` seconds;
        the socket is closed if anything fails."""
        deadline = time.monotonic() + timeout
        client = cls.open(address, protocol, timeout, rcvbuf, decoder)
        try:
            client.register(name, deadline)
        except BaseException:
            client.close()
            raise
        return client

    def register(
        self, name: str, deadline: float, *, sender_only: bool = False, rooms: tuple[str, ...] = ("",)
    ) -> None:
        """Drive the adapter's registration for ``name`` until it is done;
        :class:`RegistrationRefused` if the server refuses it.  ``sender_only``:
        a connection that only sends (:meth:`bench.wire.Adapter.sender_registration`);
        ``rooms``: a workload's rooms to join (``("",)``: the target's one room)."""
        self.name = name
        adapter = self.adapter
        registration = adapter.sender_registration(name, rooms) if sender_only else adapter.registration(name, rooms)
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
