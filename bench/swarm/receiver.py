"""A worker's receiving side: read, stamp, and record.

Every read goes through :class:`bench.net.rx.StampedReader` (one reused
buffer; a delivery's latency ends at the kernel's receive stamp of the read
with ``--rx-clock kernel``, at the read itself with ``--rx-clock read``; the
harness's read delay is measured apart as ``receive_lag``) and then the one
receive path, :class:`bench.net.rx.ReceivePath`: the connection's decoder
cuts whole lines, the protocol adapter says which are deliveries, the
recorder (:class:`bench.measure.recorder.DeliveryRecorder`) accounts them
under their labels (:mod:`bench.workload.labels`).  Over TLS the raw read
(and so its kernel stamp: the ciphertext's arrival) comes first, then the
connection's channel decrypts (:meth:`bench.swarm.registrar.Registrar.tls_in`),
so decryption is the harness's time, never the server's latency.
"""

from __future__ import annotations

import socket

from bench.measure.labelled import Labelled
from bench.measure.recorder import DeliveryRecorder
from bench.net.rx import Read, ReceivePath, StampedReader
from bench.swarm.connections import READY, Conn
from bench.swarm.plan import WorkerPlan
from bench.swarm.registrar import Registrar
from bench.swarm.sender import Sender
from bench.wire import Adapter
from bench.workload import labels


class Receiver:
    """Reads a worker's connections and records what they receive."""

    def __init__(self, plan: WorkerPlan, adapter: Adapter, registrar: Registrar, sender: Sender) -> None:
        self.registrar = registrar
        self.sockets = registrar.sockets
        self.send_control = sender.send_control
        self.line_errors = adapter.line_errors
        #: protocols that expect answers (PING): every connection's lines are looked at
        self.replies_needed = adapter.replies_needed
        self.quickack = plan.quickack and hasattr(socket, "TCP_QUICKACK")
        workload = plan.workload
        keys, routes = labels.routes(workload, [c.cid for c in plan.clients if c.receives])
        self.recorder = DeliveryRecorder(workload.sender_names(), labelled=Labelled(keys, routes))
        registrar.fault_sink = self.recorder.fault_sink
        self.path = ReceivePath(adapter, self.recorder)
        self.reader = StampedReader(kernel=registrar.kernel_clock)
        self.bytes_in = 0
        #: when the last bytes arrived on any connection (monotonic ns; 0: never)
        self.last_rx_ns = 0

    def housekeeping(self) -> None:
        """Refresh the clock offset and move the read lags into their histogram."""
        self.reader.housekeeping()

    def readable(self, conn: Conn) -> None:
        """``conn`` has bytes (or its end) to read."""
        measured = conn.state == READY and conn.tracker is not None
        try:
            read = self.reader.read(conn.sock, stamped=measured)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.registrar.end(conn, f"recv: {exc.strerror or exc}")
            return
        if self.quickack:
            # Re-arm after every read (the kernel drops back to delayed ACKs).
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        data = read.data
        if not data:
            self.registrar.end(conn, "closed by server" if conn.state == READY else "closed during registration")
            return
        self.bytes_in += len(data)
        self.last_rx_ns = read.arrival_ns
        if conn.tls is not None:
            plain = self.registrar.tls_in(conn, data)
            if plain is None:
                return  # a record still arriving, the handshake's bytes, or the end
            data = plain
            read = Read(plain, read.arrival_ns)
        if conn.state != READY:
            rest = self.registrar.receive(conn, data)
            if rest:  # lines after the registration are traffic
                self._take(conn, read, b"".join([line + b"\n" for line in rest]))
            return
        if conn.tracker is None and not self.replies_needed:
            return  # a sender that is not a measured receiver: read and discard
        self._take(conn, read, None)

    def _take(self, conn: Conn, read: Read, block: bytes | None) -> None:
        """A registered connection's read through the receive path (``block``:
        the whole lines its registration left over, instead of the read's bytes)."""
        path, cid = self.path, conn.spec.cid
        try:
            if block is None:
                incoming = path.take(conn.decoder, conn.tracker, cid, read)
            else:
                incoming = path.take_block(conn.tracker, cid, block, read.arrival_ns)
        except self.line_errors:
            self.sockets.close(conn, "line too long")
            return
        if incoming.reply:
            self.send_control(conn, incoming.reply)
        if incoming.ended is not None:
            conn.end_reason = incoming.ended
