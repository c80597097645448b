"""TLS on the chat and WebSocket ports (``--tls-port``, ``--wss-port``).

One :class:`ssl.SSLContext` for the server (:func:`server_context`: TLS 1.2
or newer, the standard library's defaults for ciphers, session tickets for
resumption, no renegotiation), and :class:`TlsSocket`, the socket a TLS
client's session and outbox use, the way :class:`server.wsframes.WsSocket`
is for a WebSocket client: plaintext in and out, TLS records on the wire,
so the hub, the handlers and the fan-out strategies do not change at all.

Why ``ssl.MemoryBIO`` and not ``SSLContext.wrap_socket``: a client's reader
thread blocks in ``recv`` while the flusher writes to the same connection,
and one OpenSSL ``SSL`` object must not be read and written by two threads
at once; a blocking SSL socket would also make the flusher wait.  So the
kernel socket stays a plain socket (blocking for its reader, sends with
``MSG_DONTWAIT``), and the TLS state machine is an :class:`ssl.SSLObject`
fed through two memory BIOs under one lock per connection, held only for
in-memory work, never across a syscall that waits:

* in (the reader thread): ``recv`` on the kernel socket without the lock,
  then under it the bytes go into the incoming BIO and ``SSLObject.read``
  takes out whatever plaintext they complete.  The handshake runs here too,
  on the first ``recv``, so it never holds up the accept loop or another
  client, and the server's registration timeout bounds it (the reaper shuts
  the socket down, which ends the wait).
* out (whoever writes: the flusher, a writer thread, the reader's replies):
  ``send`` encrypts at most :data:`TLS_WRITE_BYTES` of plaintext at a time
  into the outgoing BIO (a memory BIO never refuses a write, so
  ``SSL_write`` never asks to be retried with the same buffer) and offers
  the records to the kernel with one non-blocking send.  Records the kernel
  does not take stay here (``_tail``, at most one chunk's worth) and go
  first next time; the plaintext they carry is reported as *not* sent, so
  the outbox keeps it queued, counts it against the send-queue limit and
  waits for EPOLLOUT exactly as with a plain socket, and hands the same
  bytes back next time (skipped here: they are in ``_tail`` already).
  Order is kept because every byte leaves the outgoing BIO and the kernel
  socket in one order, under the lock.

Lines written before the handshake finished (the name prompt is sent at
once) are held and encrypted right after it.  Bytes that reading produces
(a TLS 1.3 key update's answer) join ``_tail`` and go out with the next
send.  Plaintext on a TLS port gets a plaintext answer (a chat line, or an
HTTP 400 on the WebSocket port) and is closed; every failed handshake is
logged with OpenSSL's reason.

The terminal client (``chat-client --tls``) has the same two threads on one
connection, so it uses this class too, with ``server_hostname``.  What it
costs against the alternatives (``tools/tlssend.py``, and in the whole
server ``tools/tlscost.py``): docs/architecture.md, "TLS".
"""

from __future__ import annotations

import errno
import logging
import select
import socket
import ssl
import threading

log = logging.getLogger(__name__)

#: Plaintext encrypted per ``SSL_write``: four full TLS records.  It bounds
#: the ciphertext a slow client holds here besides its outbox's queue.
TLS_WRITE_BYTES = 65536
#: Bytes asked of the kernel per recv (as ``server.session.RECV_BYTES``).
TLS_RECV_BYTES = 65536
#: The first byte of every TLS connection: a handshake record (RFC 8446 5.1).
TLS_HANDSHAKE_RECORD = 0x16
#: ``send`` flag for one non-blocking attempt (see server.fanout.base.DONTWAIT).
DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)

#: What a plaintext client on the TLS chat port is told before the close.
PLAINTEXT_CHAT_ANSWER = b"*** Disconnected: this port speaks TLS (chat-client --tls)\n"
#: What a plain HTTP request on the wss port gets.
PLAINTEXT_HTTP_BODY = b"This port speaks HTTPS: use https:// or wss://.\n"
PLAINTEXT_HTTP_ANSWER = (
    b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n"
    + f"Content-Length: {len(PLAINTEXT_HTTP_BODY)}\r\n\r\n".encode()
    + PLAINTEXT_HTTP_BODY
)


#: Why a write fails that a memory BIO cannot refuse (see ``_encrypt``).
RETRY_WANTED = "TLS write wants a retry (renegotiation?)"


class TlsError(ConnectionError):
    """The TLS connection failed: a handshake OpenSSL refused, plaintext on
    the TLS port, or the peer gone mid-handshake.  An ``OSError``, so a
    session ends on it like on any socket error."""


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """The server's TLS settings: certificate chain and key from PEM files,
    TLS 1.2 or newer, OpenSSL's default ciphers (forward secrecy, AEAD),
    session tickets (TLS 1.2 and 1.3 resumption), no renegotiation.
    Raises ``OSError``/``ssl.SSLError`` for files that do not load."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION
    context.load_cert_chain(cert_file, key_file)
    return context


def describe_ssl_error(exc: ssl.SSLError, server_side: bool = True) -> str:
    """OpenSSL's reason in words ("wrong version number"), and what it
    usually means on this side."""
    reason = (exc.reason or str(exc)).lower().replace("_", " ")
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"{reason}: {exc.verify_message}"
    peer = "client" if server_side else "server"
    if "alert unknown ca" in reason or "alert bad certificate" in reason or "certificate unknown" in reason:
        return f"{reason} (the client does not trust our certificate)" if server_side else reason
    if "wrong version number" in reason or "unsupported protocol" in reason or "record layer failure" in reason:
        return f"{reason} (the {peer} does not speak TLS 1.2+ here)"
    if "http request" in reason:
        return f"{reason} (plain HTTP on the TLS port)"
    return reason


class TlsSocket:
    """One TLS connection, as its session and outbox see it: a socket with
    ``recv``/``send``/``sendall``/``shutdown``/``close``/``fileno`` over
    plaintext (see the module docstring for how, and why this way)."""

    def __init__(
        self,
        sock: socket.socket,
        context: ssl.SSLContext,
        peer: str,
        *,
        plaintext_answer: bytes = b"",
        server_hostname: str | None = None,
    ) -> None:
        """The server's side of a connection, or with ``server_hostname`` the
        client's (``chat-client --tls``: the same threads, the same hazard)."""
        self.raw = sock
        self.peer = peer
        self.server_side = server_hostname is None
        self._plaintext_answer = plaintext_answer
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(
            self._incoming, self._outgoing, server_side=self.server_side, server_hostname=server_hostname
        )
        #: Guards the SSLObject, both BIOs and the fields below.
        self._lock = threading.Lock()
        #: Records taken from the outgoing BIO that the kernel has not taken yet.
        self._tail = b""
        #: Plaintext bytes at the start of the next ``send`` that ``_tail`` carries.
        self._tail_raw = 0
        #: Lines written before the handshake finished.
        self._early: list[bytes] = []
        self.established = False
        #: Sends the kernel took only part of (records kept in ``_tail``).
        self.partial_sends = 0
        self._eof = False
        self._closed_sent = False

    # -- what the outbox and the session call ----------------------------------

    def fileno(self) -> int:
        return self.raw.fileno()

    def getpeername(self) -> object:
        return self.raw.getpeername()

    @property
    def session_reused(self) -> bool:
        """Whether the client resumed an earlier session (a ticket)."""
        return self._tls.session_reused

    @property
    def version(self) -> str | None:
        return self._tls.version()

    def recv(self, n: int) -> bytes:
        """Plaintext (at least one byte), or b"" at the end.  The reader
        thread only; the first call does the handshake."""
        if not self.established:
            self.handshake()
        while True:
            with self._lock:
                data = self._read_plain(n)
            if data:
                return data
            if self._eof:
                return b""
            wire = self.raw.recv(TLS_RECV_BYTES)
            if not wire:
                return b""
            with self._lock:
                self._incoming.write(wire)

    def send(self, data: bytes, flags: int = 0) -> int:
        """Encrypt and send without waiting (whatever ``flags`` say): the
        plaintext bytes of ``data`` whose records the kernel took whole."""
        with self._lock:
            if self._tail or self._tail_raw or self._closed_sent or not self.established or len(data) > TLS_WRITE_BYTES:
                return self._send_slow(data)
            # The common case (a broadcast block to a reader that keeps up):
            # one SSL_write, one non-blocking send, nothing left over.
            try:
                self._tls.write(data)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                raise TlsError(errno.EPROTO, RETRY_WANTED) from None
            records = self._outgoing.read()
            try:
                taken = self.raw.send(records, DONTWAIT)
            except (BlockingIOError, InterruptedError):
                taken = 0
            if taken == len(records):
                return len(data)
            self._tail, self._tail_raw = records[taken:], len(data)
            self.partial_sends += 1
            return 0

    def _send_slow(self, data: bytes) -> int:
        """``send`` with records left over, before the handshake, or with
        more than one chunk (lock held)."""
        if not self.established:
            if data:
                self._early.append(bytes(data))
            return len(data)
        if self._closed_sent:
            raise BrokenPipeError(errno.EPIPE, "TLS connection closed")
        if self._tail and not self._push():
            self.partial_sends += 1
            return 0
        pos = min(self._tail_raw, len(data))  # already encrypted and now on the wire
        self._tail_raw -= pos  # a caller may hand them back in pieces (WsSocket's frame tail)
        view = memoryview(data)
        while pos < len(data):
            chunk = view[pos : pos + TLS_WRITE_BYTES]
            self._encrypt(chunk)
            if not self._push():
                self._tail_raw = len(chunk)
                self.partial_sends += 1
                return pos
            pos += len(chunk)
        return pos

    def sendall(self, data: bytes) -> None:
        """Blocking send (the ``direct`` and ``threads`` strategies): waits
        for room without holding the lock."""
        pos = 0
        while True:
            pos += self.send(data[pos:])
            with self._lock:
                done = pos >= len(data) and (not self._tail or self._push())
            if done:
                return
            self._wait_writable()

    def shutdown(self, how: int) -> None:
        if how in (socket.SHUT_WR, socket.SHUT_RDWR):
            self._send_close_notify()
        self.raw.shutdown(how)

    def close(self) -> None:
        if self.raw.fileno() != -1:
            self._send_close_notify()
        self.raw.close()

    # -- inside (caller holds the lock unless said otherwise) ---------------------

    def _encrypt(self, data: bytes | memoryview) -> None:
        """Plaintext into the outgoing BIO, the records onto ``_tail``."""
        try:
            self._tls.write(data)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            # A memory BIO takes every write, and with renegotiation off
            # neither side has to read before it writes: this cannot happen.
            raise TlsError(errno.EPROTO, RETRY_WANTED) from None
        self._tail += self._outgoing.read()

    def _push(self) -> bool:
        """Offer ``_tail`` to the kernel once, without waiting; True when it
        is all out.  Socket errors other than "full" propagate."""
        try:
            taken = self.raw.send(self._tail, DONTWAIT)
        except (BlockingIOError, InterruptedError):
            taken = 0
        self._tail = self._tail[taken:]
        return not self._tail

    def _read_plain(self, n: int) -> bytes:
        """The plaintext the incoming BIO completes; sets ``_eof`` on the
        client's close_notify."""
        parts: list[bytes] = []
        try:
            while True:
                part = self._tls.read(n)
                if not part:
                    break
                parts.append(part)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            self._eof = True
        if self._outgoing.pending:  # a key update's answer: out with the next send
            self._tail += self._outgoing.read()
            self._push_quietly()
        return b"".join(parts)

    def _push_quietly(self) -> None:
        try:
            self._push()
        except OSError:
            pass  # the reader's next recv sees the connection is gone

    def _wait_writable(self) -> None:
        """Wait (lock not held) until the kernel socket takes more; a
        shutdown ends the wait (the next send then raises)."""
        poller = select.poll()
        poller.register(self.raw.fileno(), select.POLLOUT)
        poller.poll()

    # -- the handshake (the reader thread, lock not held) ----------------------------

    def handshake(self) -> None:
        """Do the handshake (the first ``recv`` does it on the server); raises
        :class:`TlsError` saying why it failed."""
        first = True
        while True:
            with self._lock:
                self._step()
            while True:
                with self._lock:
                    if self._push():
                        break
                self._wait_writable()
            if self.established:
                break
            wire = self.raw.recv(TLS_RECV_BYTES)
            if not wire:
                self._note("%s: closed during the TLS handshake", logging.INFO)
                raise TlsError(errno.ECONNABORTED, "closed during the TLS handshake")
            if first and self.server_side and wire[0] != TLS_HANDSHAKE_RECORD:
                self._refuse_plaintext()
            first = False
            with self._lock:
                self._incoming.write(wire)
        self._note("%s: TLS established (%s, resumed: %s)", logging.DEBUG, self._tls.version(), self.session_reused)

    def _note(self, message: str, level: int, *args: object) -> None:
        """Log (a server's log; a client says what went wrong its own way)."""
        if self.server_side:
            log.log(level, message, self.peer, *args)

    def _step(self) -> None:
        """One step of the handshake with what arrived (lock held); once it
        is done, the lines held meanwhile are encrypted behind its last
        records (a TLS 1.3 server's session tickets)."""
        try:
            self._tls.do_handshake()
        except ssl.SSLWantReadError:
            self._tail += self._outgoing.read()
            return
        except ssl.SSLError as exc:
            self._tail += self._outgoing.read()  # the alert that tells the client why
            self._push_quietly()
            why = describe_ssl_error(exc, self.server_side)
            self._note("%s: TLS handshake failed: %s", logging.WARNING, why)
            raise TlsError(errno.EPROTO, f"TLS handshake failed: {why}") from None
        self.established = True
        self._tail += self._outgoing.read()
        if self._early:
            self._encrypt(b"".join(self._early))
            self._early = []

    def _refuse_plaintext(self) -> None:
        self._note("%s: plaintext on the TLS port, closing", logging.WARNING)
        try:
            self.raw.send(self._plaintext_answer, DONTWAIT)
        except OSError:
            pass
        raise TlsError(errno.EPROTO, "plaintext on the TLS port")

    def _send_close_notify(self) -> None:
        """Once: what is left of ``_tail`` and a close_notify, without
        waiting (the connection is ending; what the kernel does not take now
        is dropped)."""
        with self._lock:
            if self._closed_sent or not self.established:
                return
            self._closed_sent = True
            try:
                self._tls.unwrap()
            except ssl.SSLError:
                pass  # SSLWantReadError: the client's close_notify has not come; we do not wait for it
            self._tail += self._outgoing.read()
            self._push_quietly()
