"""The client's side of the socket: connect, send lines, and a receiving
thread that turns bytes into events.

All framing and parsing goes through :mod:`server.protocol`; this module only
moves bytes.  Events reach the UI through one callback, called from the
receiving thread, in order, ending with exactly one :class:`Closed`.

With TLS (``--tls``) the connection is a :class:`server.tls.TlsSocket`, the
same one the server uses: the receiving thread reads while the person's
thread sends, and one OpenSSL connection must not be read and written by
two threads at once, so TLS goes through memory BIOs under one lock.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass

from server import protocol
from server.tls import TlsSocket

#: Seconds to wait for the TCP handshake before giving up.
CONNECT_TIMEOUT = 10.0

#: Bytes asked of the kernel per recv.
RECV_BYTES = 65536


def client_context(ca_file: str | None = None, insecure: bool = False) -> ssl.SSLContext:
    """TLS 1.2+ with the server's certificate checked against ``ca_file``
    (or the system's CAs) and its name; ``insecure``: nothing checked."""
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


@dataclass(frozen=True, slots=True)
class Line:
    """One line from the server: its text (control characters made
    harmless) and what it means, or ``None`` if the protocol module does
    not recognise it."""

    text: str
    event: protocol.ServerEvent | None


@dataclass(frozen=True, slots=True)
class Oversized:
    """The server sent a line longer than the decoder allows; it was dropped."""

    limit: int


@dataclass(frozen=True, slots=True)
class Closed:
    """The connection is over.  ``error`` is ``None`` for an orderly close
    (EOF from the server, or :meth:`Connection.close` called here), else
    what went wrong, in plain words."""

    error: str | None


ConnectionEvent = Line | Oversized | Closed


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Connection:
    """A TCP connection to a chat server.

    ``open()`` connects (raising :class:`OSError` on failure) and starts the
    receiving thread; ``send_line()`` may be called from any thread.
    """

    def __init__(
        self,
        host: str,
        port: int,
        on_event: Callable[[ConnectionEvent], None],
        *,
        max_line_bytes: int = protocol.DEFAULT_MAX_LINE_BYTES,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.address = format_address(host, port)
        self._on_event = on_event
        self._decoder = protocol.LineDecoder(max_line_bytes + protocol.SERVER_LINE_OVERHEAD, discard_oversized=True)
        self._tls_context = tls
        self._sock: socket.socket | TlsSocket | None = None
        self._send_lock = threading.Lock()
        self._closing = False
        self._thread: threading.Thread | None = None

    def open(self, timeout: float = CONNECT_TIMEOUT) -> None:
        """Connect (and with TLS, shake hands), both within ``timeout``;
        :class:`OSError` on failure (:class:`server.tls.TlsError` for TLS)."""
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stream: socket.socket | TlsSocket = sock
        if self._tls_context is not None:
            stream = TlsSocket(sock, self._tls_context, self.address, server_hostname=self.host)
            try:
                stream.handshake()
            except OSError:  # TlsError: OpenSSL's reason, in words
                sock.close()
                raise
        sock.settimeout(None)
        self._sock = stream
        self._thread = threading.Thread(target=self._receive, name="receiver", daemon=True)
        self._thread.start()

    def send_line(self, text: str) -> bool:
        """Send one line verbatim.  Returns False if the socket is gone (the
        receiving thread reports why)."""
        if self._sock is None:
            return False
        try:
            with self._send_lock:
                self._sock.sendall(protocol.encode_line(text))
        except OSError:
            return False
        return True

    def close(self) -> None:
        """Close from this side; the receiving thread ends with ``Closed(None)``."""
        self._closing = True
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the receiving thread; True if it has finished."""
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    def _receive(self) -> None:
        assert self._sock is not None
        sock = self._sock
        error: str | None = None
        try:
            while data := sock.recv(RECV_BYTES):
                before = self._decoder.oversized
                for raw in self._decoder.feed(data):
                    text = protocol.sanitize_text(protocol.decode_text(raw))
                    try:
                        event: protocol.ServerEvent | None = protocol.parse_server_line(text)
                    except protocol.ProtocolError:
                        event = None
                    self._on_event(Line(text, event))
                if self._decoder.oversized != before:
                    self._on_event(Oversized(self._decoder.max_line_bytes))
        except OSError as exc:
            if not self._closing:
                error = (exc.strerror or str(exc)).lower()
        finally:
            sock.close()
            self._on_event(Closed(error))
