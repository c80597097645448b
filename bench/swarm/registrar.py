"""A worker's connection setup: connect at the ramp rate, register each client.

Registration is the protocol adapter's I/O-free state machine
(:class:`bench.wire.Registration`); this module only moves its bytes:
it opens at most ``max_inflight`` connections at once, sends what the
registration asks for, feeds it the received lines, and gives up on a
connection past its deadline.  When the worker's share is done it reports
:class:`~bench.swarm.messages.Ready` (and, for the stalled clients,
:class:`~bench.swarm.messages.Stalled`).

Over TLS (``plan.tls``) each connection gets a :class:`bench.net.tls.TlsChannel`:
the handshake runs here once TCP is up (after the server's plaintext
greeting for NATS), then the registration's bytes are encrypted, and every
later read of the connection is decrypted by :meth:`Registrar.tls_in` after
its raw, kernel-stamped read.  The setup of every connection is timed
(``connect()`` to TCP up, the handshake, up to registered) and reported
with ``Ready`` (:class:`~bench.swarm.messages.SetupTimes`).
"""

from __future__ import annotations

import errno
import socket
import ssl
import time
from collections import Counter, deque
from collections.abc import Callable

from bench.measure.integrity import IntegrityTracker
from bench.measure.labelled import EncodedHistogram
from bench.measure.stats import LatencyHistogram
from bench.net import stamps
from bench.net.tls import TlsChannel, TlsFailure
from bench.swarm.connections import CLOSED, CONNECTING, READY, REGISTERING, STALLED, Conn, Sockets
from bench.swarm.messages import Ready, Report, SetupTimes, Stalled
from bench.swarm.plan import ClientSpec, WorkerPlan
from bench.wire import Adapter

#: Seconds between scans for registrations past their deadline.
DEADLINE_CHECK_NS = 100_000_000


class Registrar:
    """Opens a worker's connections and registers them."""

    def __init__(self, plan: WorkerPlan, adapter: Adapter, sockets: Sockets, report: Callable[[Report], None]) -> None:
        self.plan = plan
        self.adapter = adapter
        self.sockets = sockets
        self.report = report
        #: receivers get kernel receive stamps (``--rx-clock kernel``, where supported)
        self.kernel_clock = plan.rx_clock == "kernel" and stamps.supported()
        self.pending: deque[ClientSpec] = deque(plan.clients)
        self.inflight = 0
        self.next_connect_ns = time.monotonic_ns()
        self.next_deadline_check_ns = 0
        self.registered: list[int] = []
        #: every registered connection that sends / measures, open or closed since
        self.sender_conns: list[Conn] = []
        self.receiver_conns: list[Conn] = []
        self.failures: Counter[str] = Counter()
        self.stalled_conns: list[Conn] = []
        self.connecting_stalled = False
        self.ready_sent = False
        #: where the receivers' trackers count faults too (the recorder's: each
        #: fault in the interval it was seen in); set by the receiver
        self.fault_sink: list[int] | None = None
        # connection setup times (µs) and what TLS negotiated
        self.connect_times = LatencyHistogram()
        self.tls_full_times = LatencyHistogram()
        self.tls_resumed_times = LatencyHistogram()
        self.register_times = LatencyHistogram()
        self.negotiated: Counter[str] = Counter()
        #: ``--tls-resume``: the session the next connection offers
        self.session: ssl.SSLSession | None = None

    # -- the loop's hooks -----------------------------------------------------------

    def wants_more(self) -> bool:
        """Connections are still to be opened, and there is room for one."""
        return bool(self.pending) and self.inflight < self.plan.max_inflight

    def tick(self, now: int) -> None:
        """Open what the ramp allows, time out late registrations, report ``ready``."""
        if self.wants_more():
            self._open_more(now)
        if self.inflight and now >= self.next_deadline_check_ns:
            self.next_deadline_check_ns = now + DEADLINE_CHECK_NS
            for conn in self._registering():
                if now > conn.deadline_ns:
                    self.fail(conn, "registration timeout")
        if not self.ready_sent and not self.pending and not self.inflight:
            self.ready_sent = True
            self.report(Ready(list(self.registered), dict(self.failures), self.setup_times()))

    def setup_times(self) -> SetupTimes:
        return SetupTimes(
            connect=EncodedHistogram.of(self.connect_times),
            tls_full=EncodedHistogram.of(self.tls_full_times),
            tls_resumed=EncodedHistogram.of(self.tls_resumed_times),
            register=EncodedHistogram.of(self.register_times),
            tls=dict(self.negotiated),
        )

    def stall(self) -> None:
        """Open the stalled clients (the ``stall`` command)."""
        self.connecting_stalled = True
        for spec in self.plan.stalled:
            self._connect(spec, stalled=True)
        self._maybe_stalled_done()

    def release(self) -> None:
        """Close the stalled clients (the ``release`` command)."""
        for conn in self.stalled_conns:
            self.sockets.close(conn, None)
        self.stalled_conns.clear()

    # -- connecting -------------------------------------------------------------------

    def _open_more(self, now: int) -> None:
        ramp = self.plan.ramp_per_s
        interval = int(1e9 / ramp) if ramp > 0 else 0
        while self.wants_more() and now >= self.next_connect_ns:
            self._connect(self.pending.popleft(), stalled=False)
            if interval:
                # Never bank more than one interval of credit after a pause.
                self.next_connect_ns = max(self.next_connect_ns + interval, now - interval)

    def _connect(self, spec: ClientSpec, *, stalled: bool) -> None:
        plan = self.plan
        sock = socket.socket(socket.AF_INET6 if ":" in plan.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if stalled:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, plan.stalled_rcvbuf)
        elif self.kernel_clock and spec.receives:
            stamps.enable(sock)
        login = plan.logins.for_client(spec.cid) if plan.logins is not None else None
        now = time.monotonic_ns()
        conn = Conn(
            spec=spec,
            sock=sock,
            decoder=self.adapter.decoder(),
            registration=(
                self.adapter.sender_registration(spec.name, login, spec.rooms)
                if spec.slot is not None and not spec.receives
                else self.adapter.registration(spec.name, login, spec.rooms)
            ),
            fd=sock.fileno(),
            deadline_ns=now + int(plan.connect_timeout_s * 1e9),
            stalled=stalled,
            opened_ns=now,
        )
        if plan.tls is not None:
            address = plan.addresses[spec.node] if plan.addresses else (plan.host, plan.port)
            conn.tls = TlsChannel(
                plan.tls.context(),
                plan.tls.name_for(address[0]),
                self.session if plan.tls.resume else None,
                self.adapter.tls_greeting_first,
            )
        self.inflight += 1
        # A target of several nodes: the client's own node (round robin, plan.node_of).
        err = sock.connect_ex(plan.addresses[spec.node] if plan.addresses else (plan.host, plan.port))
        if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            self.inflight -= 1
            self.failures[f"connect: {errno.errorcode.get(err, err)}"] += 1
            sock.close()
            self._maybe_stalled_done()
            return
        self.sockets.add(conn)

    def writable(self, conn: Conn) -> None:
        """A connecting or registering connection can be written to."""
        if conn.state == CONNECTING:
            err = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.fail(conn, f"connect: {errno.errorcode.get(err, str(err))}")
                return
            conn.state = REGISTERING
            conn.up_ns = time.monotonic_ns()
            self.connect_times.record((conn.up_ns - conn.opened_ns) // 1000)
            self.sockets.want_write(conn, False)
            if conn.tls is not None:
                self._send_raw(conn, self._tls_step(conn, conn.tls.start))
                return
            first = conn.registration.connected()
            if first:
                self._send(conn, first)
            return
        # Registering: only registration bytes can be queued here.
        try:
            n = conn.sock.send(conn.outbuf)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.fail(conn, f"send: {exc.strerror or exc}")
            return
        del conn.outbuf[:n]
        if not conn.outbuf:
            self.sockets.want_write(conn, False)

    def _send(self, conn: Conn, data: bytes) -> None:
        """Registration lines: tiny, sent before any traffic; queue if needed
        (over TLS: encrypted)."""
        if conn.tls is not None and data:
            data = conn.tls.encrypt(data)
        self._send_raw(conn, data)

    def _send_raw(self, conn: Conn, data: bytes) -> None:
        """Bytes as they go on the wire (a TLS handshake's, or records)."""
        if not data or conn.state == CLOSED:
            return
        conn.outbuf += data
        try:
            n = conn.sock.send(conn.outbuf)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError as exc:
            self.fail(conn, f"send: {exc.strerror or exc}")
            return
        del conn.outbuf[:n]
        if conn.outbuf:
            self.sockets.want_write(conn, True)

    # -- TLS --------------------------------------------------------------------------

    def _tls_step(self, conn: Conn, step: Callable[[], bytes]) -> bytes:
        """One step of ``conn``'s handshake: the bytes to send (empty when it
        failed: the connection is closed, the reason counted)."""
        tls = conn.tls
        assert tls is not None
        try:
            out = step()
        except TlsFailure as exc:
            self.fail(conn, str(exc))
            return b""
        if tls.established and not conn.secured_ns:
            conn.secured_ns = time.monotonic_ns()
            (self.tls_resumed_times if tls.session_reused else self.tls_full_times).record(tls.handshake_ns // 1000)
            self.negotiated[f"{tls.version} {tls.cipher}"] += 1
        return out

    def tls_in(self, conn: Conn, data: bytes) -> bytes | None:
        """Raw bytes read from a TLS connection -> the plaintext for the
        layers above (None: nothing for them now -- the handshake took the
        bytes, a record is still arriving -- or the connection ended)."""
        tls = conn.tls
        assert tls is not None
        if not tls.established:
            out = self._tls_step(conn, lambda: tls.handshake(data))
            if conn.state == CLOSED:
                return None
            self._send_raw(conn, out)
            if not tls.established:
                return None
            self._send(conn, conn.registration.connected())
            data = b""  # records that came with the server's last flight, if any
        try:
            plain = tls.decrypt(data)
        except TlsFailure as exc:
            self.end(conn, str(exc))
            return None
        if tls.closed and not plain:
            self.end(conn, "closed by server" if conn.state == READY else "closed during registration")
            return None
        return plain or None

    # -- registering --------------------------------------------------------------------

    def receive(self, conn: Conn, data: bytes) -> list[bytes] | None:
        """Bytes received before ``conn`` is ready: the lines that follow its
        registration (traffic) once it completes, else None."""
        try:
            lines = conn.decoder.feed(data)
        except self.adapter.line_errors:
            self.fail(conn, "line too long")
            return None
        for i, line in enumerate(lines):
            self._line(conn, line)
            if conn.state == READY:
                return lines[i + 1 :]
            if conn.state in (STALLED, CLOSED):
                return None
        return None

    def _line(self, conn: Conn, line: bytes) -> None:
        step = conn.registration.line(line)
        if step.send:
            self._send(conn, step.send)
            if conn.state == CLOSED:
                return
        if step.error is not None:
            self.fail(conn, step.error)
        elif step.done:
            self._registered(conn)

    def _registered(self, conn: Conn) -> None:
        self.inflight -= 1
        self.register_times.record((time.monotonic_ns() - (conn.secured_ns or conn.up_ns)) // 1000)
        if conn.tls is not None and self.plan.tls is not None and self.plan.tls.resume:
            # TLS 1.3 tickets come after the handshake: by now the server has sent them
            session = conn.tls.session
            if session is not None and session.has_ticket:
                self.session = session
        if conn.stalled:
            conn.state = STALLED
            self.sockets.forget(conn)  # never read again
            self.stalled_conns.append(conn)
            self._maybe_stalled_done()
            return
        conn.state = READY
        if conn.spec.receives:
            conn.tracker = IntegrityTracker(self.fault_sink)
            self.receiver_conns.append(conn)
        if conn.spec.slot is not None:
            self.sender_conns.append(conn)
        self.registered.append(conn.spec.cid)

    # -- failing --------------------------------------------------------------------------

    def fail(self, conn: Conn, reason: str) -> None:
        """A connection that never got registered."""
        self.failures[reason] += 1
        self.inflight -= 1
        self.sockets.drop(conn)
        self._maybe_stalled_done()

    def end(self, conn: Conn, reason: str) -> None:
        """The connection broke: a disconnect once registered, else a failure."""
        if conn.state == READY:
            self.sockets.close(conn, reason)
        else:
            self.fail(conn, reason)

    def _maybe_stalled_done(self) -> None:
        if self.connecting_stalled and not any(c.stalled for c in self._registering()):
            self.connecting_stalled = False
            self.report(Stalled(len(self.stalled_conns), dict(self.failures)))

    def _registering(self) -> list[Conn]:
        return [c for c in self.sockets.conns.values() if c.state in (CONNECTING, REGISTERING)]
