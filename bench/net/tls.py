"""TLS on the harness's client side, in one place: settings, a sans-IO channel, a socket.

Every connection the harness opens over TLS is an :class:`ssl.SSLObject`
between two :class:`ssl.MemoryBIO` objects (:class:`TlsChannel`), never an
``SSLSocket``, because the harness must read the **kernel socket** itself:
a delivery's latency ends at the kernel's receive stamp (``SO_TIMESTAMPNS``,
:mod:`bench.net.stamps`), which only ``recvmsg`` on the raw socket returns.
So a read is: ``recvmsg_into`` on the raw socket (the stamp is the
*ciphertext's* arrival, before any decryption work), then the bytes go into
the incoming BIO and the plaintext comes out.  Decryption time is the
harness's, after the stamp: it is never counted as server latency (it shows
in the read lag, like the rest of the harness's work).

* :class:`TlsOptions` -- what ``--tls``, ``--ca``, ``--insecure``,
  ``--server-name`` and ``--tls-resume`` say; picklable (worker processes get
  it in their plan) and builds the client :class:`ssl.SSLContext` once per
  process.
* :class:`TlsChannel` -- the sans-IO client connection: :meth:`~TlsChannel.start`
  (the ClientHello), :meth:`~TlsChannel.handshake` (received bytes in, bytes
  to send out), :meth:`~TlsChannel.encrypt`, :meth:`~TlsChannel.decrypt`.
  It also does the one protocol whose TLS starts late: NATS sends its
  ``INFO`` line in plaintext and the client starts TLS after it
  (``greeting_first``).  The swarm's registrar, sender and receiver drive it
  from their event loop.
* :class:`TlsStream` -- a ``socket.socket`` over a channel, for the blocking
  client (:class:`bench.wire.client.WireClient`: the gate, onebroadcast,
  Locust): ``sendall`` encrypts (``send`` stays the raw socket's, and
  ``sendall_records`` sends what the channel encrypted); ``recv``,
  ``recv_into`` and ``recvmsg_into``
  read the raw socket and decrypt, returning the raw read's ancillary data,
  so :class:`bench.net.rx.StampedReader` gets the ciphertext's kernel stamp
  through it unchanged.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any, TypedDict

from client.connection import client_context

#: Plaintext the channel's ``SSL_read`` takes out per call (a TLS record
#: carries at most 16 KiB; a bigger read takes several records at once).
READ_CHUNK = 256 * 1024
#: The most ciphertext one TLS record takes (16 KiB of plaintext plus the
#: record's header, padding and tag; RFC 8446 5.2 allows 16 KiB + 256).
MAX_RECORD_BYTES = 16384 + 256
#: Bytes of the plaintext greeting (NATS's INFO line) held while waiting for
#: its end before TLS starts: an INFO is a few hundred bytes.
MAX_GREETING_BYTES = 64 * 1024
#: Raw bytes read per call while a blocking stream handshakes.
HANDSHAKE_RECV_BYTES = 65536


class TlsFailure(Exception):
    """A TLS connection failed: the handshake was refused (an untrusted
    certificate, a port that does not speak TLS) or a record did not
    decrypt.  The message says why in one line, and what to do."""


class TlsInfo(TypedDict):
    """What a result document records about the client's TLS settings."""

    ca_file: str | None  #: the CA trusted (None: the system's)
    insecure: bool  #: no certificate check at all
    server_name: str | None  #: the name sent (SNI) and checked; None: the target's address
    resume: bool  #: connections offer the worker's last session (resumed handshakes)


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """The client side's TLS settings (see the module docstring)."""

    #: Trust this CA (PEM) instead of the system's; a target the harness
    #: starts is trusted through the CA it generated (:mod:`bench.targets.certs`).
    ca_file: str | None = None
    #: Check nothing (a self-signed server somebody else started); loud in the results.
    insecure: bool = False
    #: The name sent in SNI and checked against the certificate (None: the target's host).
    server_name: str | None = None
    #: Each connection offers the session of the worker's previous one, so
    #: handshakes after the first are resumed (when the server agrees).
    resume: bool = False

    def context(self) -> ssl.SSLContext:
        """The client context for these settings, built once per process."""
        return _client_context(self.ca_file, self.insecure)

    def name_for(self, host: str) -> str:
        return self.server_name or host

    def describe(self) -> TlsInfo:
        return {
            "ca_file": self.ca_file,
            "insecure": self.insecure,
            "server_name": self.server_name,
            "resume": self.resume,
        }


#: One context per (CA, insecure) pair: the client's (client/connection.py), kept, so
#: that every connection of a run shares its session cache and its loaded CA.
_client_context = cache(client_context)


def describe_failure(exc: ssl.SSLError) -> str:
    """OpenSSL's reason for a failed client handshake, in words, with what usually helps."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message or exc.reason or "certificate verify failed"
        return f"TLS: the target's certificate is not trusted ({why}): trust its CA with --ca FILE, or --insecure"
    reason = (exc.reason or str(exc)).lower().replace("_", " ")
    if "wrong version number" in reason or "record layer failure" in reason or "packet length too long" in reason:
        return f"TLS handshake failed: {reason} (the target does not speak TLS on this port?)"
    if "alert" in reason:
        return f"TLS handshake failed: the target refused it ({reason})"
    return f"TLS handshake failed: {reason}"


class TlsChannel:
    """One client TLS connection, sans-IO (see the module docstring).

    ``session``: offer it for resumption.  ``greeting_first``: the server
    speaks one plaintext line first (NATS's ``INFO``); the handshake starts
    when it has arrived.
    """

    __slots__ = (
        "_greeting",
        "_in",
        "_out",
        "_tls",
        "closed",
        "established",
        "greeting_first",
        "handshake_ns",
        "started_ns",
    )

    def __init__(
        self,
        context: ssl.SSLContext,
        server_name: str | None,
        session: ssl.SSLSession | None = None,
        greeting_first: bool = False,
    ) -> None:
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._tls = context.wrap_bio(
            self._in, self._out, server_side=False, server_hostname=server_name, session=session
        )
        self.greeting_first = greeting_first
        self._greeting = b""
        self.established = False
        self.closed = False  #: the server sent close_notify
        self.started_ns = 0  #: when the ClientHello was produced (monotonic ns)
        self.handshake_ns = 0  #: ClientHello to the server's Finished (0 until established)

    # -- the handshake ------------------------------------------------------------

    def start(self) -> bytes:
        """Bytes to send once TCP is up: the ClientHello (nothing yet when
        the server speaks first)."""
        if self.greeting_first:
            return b""
        return self._step()

    def handshake(self, data: bytes) -> bytes:
        """Received bytes while not established: the bytes to send back.
        Raises :class:`TlsFailure`.  Once :attr:`established`, records that
        came with the last flight are waiting: :meth:`decrypt` (``b""``) takes them."""
        if self.greeting_first and not self.started_ns:
            self._greeting += data
            end = self._greeting.find(b"\n")
            if end < 0:
                if len(self._greeting) > MAX_GREETING_BYTES:
                    raise TlsFailure("TLS: no end of the server's greeting line before TLS")
                return b""
            data = self._greeting[end + 1 :]  # nothing, normally: the server waits for our ClientHello
            self._greeting = b""
            out = self._step()
            if data:
                self._in.write(data)
                out += self._step()
            return out
        self._in.write(data)
        return self._step()

    def _step(self) -> bytes:
        if not self.started_ns:
            self.started_ns = time.monotonic_ns()
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            return self._out.read()
        except ssl.SSLError as exc:
            raise TlsFailure(describe_failure(exc)) from None
        self.established = True
        self.handshake_ns = time.monotonic_ns() - self.started_ns
        return self._out.read()

    # -- traffic ------------------------------------------------------------------

    def encrypt(self, data: bytes | bytearray | memoryview) -> bytes:
        """Plaintext -> the records that carry it (with anything the channel
        still had to send)."""
        if data:
            try:
                self._tls.write(data)
            except ssl.SSLError as exc:  # a memory BIO takes every write: only a broken connection gets here
                raise TlsFailure(f"TLS: cannot encrypt ({exc.reason or exc})") from None
        return self._out.read()

    def decrypt(self, data: bytes | bytearray | memoryview) -> bytes:
        """Received records -> the plaintext they complete (``b""``: a record
        is still arriving, or only TLS's own messages came, such as a TLS
        1.3 session ticket).  Sets :attr:`closed` on the server's
        close_notify; raises :class:`TlsFailure` on a record that does not
        decrypt.  Bytes the channel must send back (a key update's answer)
        wait in :meth:`pending_output`."""
        if data:
            self._in.write(data)
        parts: list[bytes] = []
        try:
            while True:
                part = self._tls.read(READ_CHUNK)
                if not part:
                    break
                parts.append(part)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            self.closed = True
        except ssl.SSLError as exc:
            raise TlsFailure(f"TLS: a record from the server did not decrypt ({exc.reason or exc})") from None
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def pending_output(self) -> bytes:
        """Bytes TLS itself must send (a key update's answer, a close_notify)."""
        return self._out.read() if self._out.pending else b""

    def close_notify(self) -> bytes:
        """The close_notify alert, to send before closing (best effort)."""
        try:
            self._tls.unwrap()
        except ssl.SSLError:
            pass  # we do not wait for the server's
        return self._out.read()

    # -- what was negotiated ----------------------------------------------------------

    @property
    def session(self) -> ssl.SSLSession | None:
        return self._tls.session

    @property
    def session_reused(self) -> bool:
        return bool(self._tls.session_reused)

    @property
    def version(self) -> str | None:
        return self._tls.version()

    @property
    def cipher(self) -> str | None:
        got = self._tls.cipher()
        return got[0] if got else None


class TlsStream(socket.socket):
    """A connected socket that speaks TLS through a :class:`TlsChannel`,
    for blocking callers (see the module docstring).  Made by :meth:`wrap`,
    which does the handshake within the socket's timeout."""

    channel: TlsChannel
    _plain: bytes
    _ancillary: list[tuple[int, int, bytes]]
    _raw_buffer: bytearray

    @classmethod
    def wrap(
        cls,
        sock: socket.socket,
        options: TlsOptions,
        host: str,
        session: ssl.SSLSession | None = None,
        greeting_first: bool = False,
    ) -> TlsStream:
        """``sock`` (connected, with its timeout) over TLS, handshake done;
        ``sock`` is detached (this object owns the descriptor).
        :class:`TlsFailure` or the socket's ``OSError`` if it fails."""
        stream = cls(sock.family, sock.type, sock.proto, fileno=sock.fileno())
        stream.settimeout(sock.gettimeout())
        sock.detach()
        stream.channel = TlsChannel(options.context(), options.name_for(host), session, greeting_first)
        stream._plain = b""
        stream._ancillary = []
        stream._raw_buffer = bytearray(READ_CHUNK)
        try:
            stream._handshake()
        except BaseException:
            stream.close()
            raise
        return stream

    def _handshake(self) -> None:
        channel = self.channel
        out = channel.start()
        while True:
            if out:
                super().sendall(out)
            if channel.established:
                break
            data = super().recv(HANDSHAKE_RECV_BYTES)
            if not data:
                raise TlsFailure("TLS: the target closed the connection during the handshake")
            out = channel.handshake(data)
        self._plain = channel.decrypt(b"")  # records that came with the server's last flight

    # -- sending -------------------------------------------------------------------

    def sendall(self, data: Any, flags: int = 0, /) -> None:
        """Encrypt ``data`` and send all of its records.  (``send`` is left
        the raw socket's: gevent's ``sendall``, under Locust, sends through
        it; the harness's blocking clients only ever call ``sendall``.)"""
        super().sendall(self.channel.encrypt(data))

    def sendall_records(self, records: bytes) -> None:
        """Send bytes already encrypted by :attr:`channel` (the rest of a
        record that a non-blocking write left, TLS's own answers), as they are."""
        super().sendall(records)

    # -- receiving ------------------------------------------------------------------

    def recvmsg_into(
        self, buffers: Iterable[Any], ancbufsize: int = 0, flags: int = 0, /
    ) -> tuple[int, list[tuple[int, int, bytes]], int, Any]:
        """Read the raw socket (its ancillary data, the kernel's receive
        stamp, is returned as it came) and decrypt into ``buffers[0]``.
        Reads until a whole record arrived (a blocking socket waits for the
        rest; a non-blocking one raises ``BlockingIOError`` and keeps what
        it got).  0 bytes: the server closed the connection."""
        target = memoryview(next(iter(buffers))).cast("B")
        if self._plain:
            return self._give(target), self._ancillary, 0, None
        # Plaintext never outgrows the ciphertext it comes from, plus one record begun earlier.
        room = max(1, min(len(target) - MAX_RECORD_BYTES, len(self._raw_buffer)))
        view = memoryview(self._raw_buffer)[:room]
        while True:
            n, ancillary, msg_flags, address = super().recvmsg_into([view], ancbufsize, flags)
            if n == 0:
                return 0, ancillary, msg_flags, address
            self._ancillary = ancillary
            self._plain = self.channel.decrypt(view[:n])
            out = self.channel.pending_output()
            if out:
                super().sendall(out)
            if self._plain:
                return self._give(target), ancillary, msg_flags, address
            if self.channel.closed:
                return 0, ancillary, msg_flags, address

    def _give(self, target: memoryview) -> int:
        n = min(len(target), len(self._plain))
        target[:n] = self._plain[:n]
        self._plain = self._plain[n:]
        return n

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0, /) -> int:
        view = memoryview(buffer).cast("B")
        if nbytes:
            view = view[:nbytes]
        if self._plain:
            return self._give(view)
        scratch = bytearray(max(len(view), MAX_RECORD_BYTES * 2))
        n = self.recvmsg_into([scratch])[0]
        got = scratch[:n]
        taken = min(n, len(view))
        view[:taken] = got[:taken]
        self._plain = bytes(got[taken:]) + self._plain
        return taken

    def recv(self, bufsize: int, flags: int = 0, /) -> bytes:
        buffer = bytearray(bufsize)
        n = self.recv_into(buffer)
        return bytes(buffer[:n])

    def pending(self) -> int:
        """Plaintext already decrypted and not yet read (a caller waiting in
        ``select`` for more must take it first)."""
        return len(self._plain)

    def close(self) -> None:
        channel = getattr(self, "channel", None)
        if channel is not None and channel.established and self.fileno() != -1:
            try:
                super().send(channel.close_notify(), socket.MSG_DONTWAIT)
            except OSError:
                pass
        super().close()
