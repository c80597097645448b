"""Handshakes back to back: open, handshake, register, close, again -- as
fast as a target takes them, to measure handshakes (connections) per second.

One process runs :func:`handshake_main` with ``concurrency`` attempts in flight
in a ``selectors`` loop: each attempt connects, does the TLS handshake
(:class:`bench.net.tls.TlsChannel`; after the plaintext greeting for NATS),
registers through the protocol adapter's state machine (unless
``register`` is off: then the handshake is the whole attempt), and closes;
a finished attempt is replaced at once, until ``end_ns``.  Every phase is
timed into HDR histograms (µs): ``connect()`` to TCP up, the handshake
(full and resumed apart; ``resume`` offers the previous attempt's
session), TCP or TLS up to registered, and the whole attempt.  Only
attempts that finish within ``[start_ns, end_ns]`` count, so completed /
(end - start) is the rate.  :mod:`bench.studies.handshakes` runs several
such processes per target and merges their results exactly.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import ssl
import time
from collections import Counter
from dataclasses import dataclass, field

from bench import wire
from bench.measure.labelled import EncodedHistogram
from bench.measure.stats import LatencyHistogram
from bench.net.tls import TlsChannel, TlsFailure, TlsOptions
from bench.wire.credentials import Logins

#: Bytes one read takes: registration answers are small (our welcome lists
#: the names online, at most a couple of KiB).
RECV_BYTES = 65536


@dataclass(frozen=True, slots=True)
class HandshakePlan:
    """What one handshake process does (picklable: it is a process's argument)."""

    index: int
    address: tuple[str, int]
    protocol: str
    tls: TlsOptions | None
    logins: Logins | None
    concurrency: int
    start_ns: int  #: monotonic: attempts start at this time ...
    end_ns: int  #: ... and no new one starts after this
    register: bool = True
    timeout_s: float = 10.0  #: an attempt not done by then is a failure
    name_prefix: str = "hs"
    cpus: tuple[int, ...] | None = None  #: pin this process (--harness-cpus)


@dataclass(frozen=True, slots=True)
class HandshakeResult:
    """One process's attempts: counts and the phases' histograms (µs)."""

    worker: int
    completed: int  #: attempts finished within the window
    failures: dict[str, int]
    connect: EncodedHistogram
    tls_full: EncodedHistogram
    tls_resumed: EncodedHistogram
    register: EncodedHistogram
    total: EncodedHistogram
    cpu_s: float  #: this process's CPU time (user + system) over its run


@dataclass(slots=True)
class Attempt:
    """One connection being opened."""

    sock: socket.socket
    name: str
    index: int
    opened_ns: int
    registration: wire.Registration
    decoder: wire.Decoder
    tls: TlsChannel | None = None
    up_ns: int = 0
    secured_ns: int = 0
    connected: bool = False
    outbuf: bytearray = field(default_factory=bytearray)


class HandshakeLoop:
    """The loop of one handshake process (see the module docstring)."""

    def __init__(self, plan: HandshakePlan) -> None:
        self.plan = plan
        self.adapter = wire.get(plan.protocol)
        self.sel = selectors.DefaultSelector()
        self.started = 0
        self.completed = 0
        self.failures: Counter[str] = Counter()
        self.hists = {k: LatencyHistogram() for k in ("connect", "tls_full", "tls_resumed", "register", "total")}
        self.session: ssl.SSLSession | None = None
        self.deadlines: dict[int, int] = {}  #: fd -> deadline (ns)

    def run(self) -> HandshakeResult:
        plan = self.plan
        before = os.times()
        delay = (plan.start_ns - time.monotonic_ns()) / 1e9
        if delay > 0:
            time.sleep(delay)
        for _ in range(plan.concurrency):
            self._open()
        while self.sel.get_map():
            if time.monotonic_ns() > plan.end_ns:
                self._abandon()  # what is in flight now would finish past the window: not counted
                break
            for key, mask in self.sel.select(0.05):
                attempt: Attempt = key.data
                try:
                    if mask & selectors.EVENT_WRITE:
                        self._writable(attempt)
                    if mask & selectors.EVENT_READ and attempt.sock.fileno() != -1:
                        self._readable(attempt)
                except TlsFailure as exc:
                    self._end(attempt, str(exc))
                except OSError as exc:
                    self._end(attempt, f"{exc.strerror or exc}")
            self._expire(time.monotonic_ns())
        after = os.times()
        return HandshakeResult(
            worker=plan.index,
            completed=self.completed,
            failures=dict(self.failures),
            cpu_s=round((after.user + after.system) - (before.user + before.system), 3),
            **{k: EncodedHistogram.of(h) for k, h in self.hists.items()},
        )

    # -- one attempt ---------------------------------------------------------------

    def _open(self) -> None:
        plan = self.plan
        if time.monotonic_ns() >= plan.end_ns:
            return
        index = self.started
        self.started += 1
        name = f"{plan.name_prefix}{plan.index}x{index}"
        login = plan.logins.for_client(index) if plan.logins is not None else None
        sock = socket.socket(socket.AF_INET6 if ":" in plan.address[0] else socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        now = time.monotonic_ns()
        attempt = Attempt(sock, name, index, now, self.adapter.registration(name, login), self.adapter.decoder())
        if plan.tls is not None:
            session = self.session if plan.tls.resume else None
            attempt.tls = TlsChannel(
                plan.tls.context(), plan.tls.name_for(plan.address[0]), session, self.adapter.tls_greeting_first
            )
        err = sock.connect_ex(plan.address)
        if err not in (0, errno.EINPROGRESS):
            self.failures[f"connect: {errno.errorcode.get(err, err)}"] += 1
            sock.close()
            self._open()
            return
        self.deadlines[sock.fileno()] = now + int(plan.timeout_s * 1e9)
        self.sel.register(sock, selectors.EVENT_WRITE, attempt)

    def _writable(self, attempt: Attempt) -> None:
        if not attempt.connected:
            err = attempt.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._end(attempt, f"connect: {errno.errorcode.get(err, str(err))}")
                return
            attempt.connected = True
            attempt.up_ns = time.monotonic_ns()
            self.hists["connect"].record((attempt.up_ns - attempt.opened_ns) // 1000)
            self.sel.modify(attempt.sock, selectors.EVENT_READ, attempt)
            if attempt.tls is not None:
                self._send(attempt, attempt.tls.start())
            elif self.plan.register:
                self._send(attempt, attempt.registration.connected())
            else:
                self._done(attempt)
            return
        self._flush(attempt)

    def _readable(self, attempt: Attempt) -> None:
        data = attempt.sock.recv(RECV_BYTES)
        if not data:
            self._end(attempt, "closed by the target")
            return
        tls = attempt.tls
        if tls is not None:
            if not tls.established:
                self._send(attempt, tls.handshake(data))
                if not tls.established:
                    return
                self._secured(attempt)
                if self.plan.register:
                    self._send(attempt, tls.encrypt(attempt.registration.connected()))
                data = b""
            data = tls.decrypt(data)
            if self._ticket(attempt) and not self.plan.register:
                self._done(attempt)
                return
        for line in attempt.decoder.feed(data) if data else ():
            step = attempt.registration.line(line)
            if step.send:
                self._send(attempt, tls.encrypt(step.send) if tls is not None else step.send)
            if step.error is not None:
                self._end(attempt, step.error)
                return
            if step.done:
                self.hists["register"].record((time.monotonic_ns() - (attempt.secured_ns or attempt.up_ns)) // 1000)
                self._done(attempt)
                return

    def _secured(self, attempt: Attempt) -> None:
        tls = attempt.tls
        assert tls is not None
        attempt.secured_ns = time.monotonic_ns()
        self.hists["tls_resumed" if tls.session_reused else "tls_full"].record(tls.handshake_ns // 1000)

    def _ticket(self, attempt: Attempt) -> bool:
        """Whether the attempt has what the next one resumes with: with
        ``resume``, a session with a ticket (TLS 1.3 sends tickets after the
        handshake: they come with a later read), kept for the next attempt."""
        tls = attempt.tls
        if tls is None or self.plan.tls is None or not self.plan.tls.resume:
            return True
        session = tls.session
        if session is None or not session.has_ticket:
            return False
        self.session = session
        return True

    def _send(self, attempt: Attempt, data: bytes) -> None:
        if data:
            attempt.outbuf += data
            self._flush(attempt)

    def _flush(self, attempt: Attempt) -> None:
        if attempt.outbuf:
            try:
                n = attempt.sock.send(attempt.outbuf)
            except BlockingIOError:
                n = 0
            del attempt.outbuf[:n]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if attempt.outbuf else 0)
        self.sel.modify(attempt.sock, events, attempt)

    # -- the end of an attempt ----------------------------------------------------------

    def _done(self, attempt: Attempt) -> None:
        now = time.monotonic_ns()
        if now <= self.plan.end_ns:
            self.completed += 1
            self.hists["total"].record((now - attempt.opened_ns) // 1000)
        self._close(attempt)

    def _end(self, attempt: Attempt, reason: str) -> None:
        if time.monotonic_ns() <= self.plan.end_ns:
            self.failures[reason[:120]] += 1
        self._close(attempt)

    def _close(self, attempt: Attempt) -> None:
        fd = attempt.sock.fileno()
        if fd == -1:
            return
        self.deadlines.pop(fd, None)
        self.sel.unregister(attempt.sock)
        attempt.sock.close()
        self._open()

    def _abandon(self) -> None:
        for key in list(self.sel.get_map().values()):
            self.sel.unregister(key.fileobj)
            key.data.sock.close()
        self.deadlines.clear()

    def _expire(self, now: int) -> None:
        late = [fd for fd, deadline in self.deadlines.items() if now > deadline]
        for fd in late:
            key = self.sel.get_map().get(fd)
            if key is not None:
                self._end(key.data, "timeout")


def handshake_main(plan: HandshakePlan) -> HandshakeResult:
    """A handshake process's entry point."""
    if plan.cpus:
        os.sched_setaffinity(0, plan.cpus)
    return HandshakeLoop(plan).run()
