"""A worker's receiving side: read, stamp, and hand each buffer to the recorder.

Every ``recv`` goes into one reused buffer.  A delivery's latency ends at the
kernel's receive stamp of the read (``--rx-clock kernel``,
:mod:`bench.measure.rxstamp`) or at the read itself (``--rx-clock read``);
the harness's read delay is measured apart (``receive_lag``).

What the bytes mean is the protocol adapter's business: a registered,
measured receiver's buffer is cut into one block of whole lines
(:meth:`bench.wire.Decoder.feed_block`), which the adapter translates into
chat lines in one step when it can (:meth:`bench.wire.Adapter.translate_block`:
the block itself for our protocol, one regex pass for IRC) and the recorder
takes whole (:meth:`bench.measure.recorder.DeliveryRecorder.receive_block`:
vectorised for big buffers); otherwise the lines go through
:meth:`bench.wire.Adapter.incoming` one by one.
"""

from __future__ import annotations

import socket
import time

from bench.measure import rxstamp
from bench.measure.recorder import DeliveryRecorder
from bench.measure.stats import LatencyHistogram
from bench.swarm.connections import READY, Conn
from bench.swarm.plan import WorkerPlan
from bench.swarm.registrar import Registrar
from bench.swarm.sender import Sender
from bench.wire import Adapter

#: Bytes asked of the kernel per ``recv``: big enough that one call drains a
#: burst of fan-out lines, so the per-call costs are spread over many lines.
RECV_BYTES = 256 * 1024


class Receiver:
    """Reads a worker's connections and records what they receive."""

    def __init__(self, plan: WorkerPlan, adapter: Adapter, registrar: Registrar, sender: Sender) -> None:
        self.registrar = registrar
        self.sockets = registrar.sockets
        self.send_control = sender.send_control
        self.control = adapter.control
        self.line_errors = adapter.line_errors
        #: received lines go through the adapter first (None: they already are chat lines)
        self.translate = adapter.incoming if adapter.translates else None
        self.translate_block = adapter.translate_block
        self.split_block = adapter.split_block
        self.quickack = plan.quickack and hasattr(socket, "TCP_QUICKACK")
        # Several nodes: each delivery's path is kept too (bench.measure.paths).
        self.recorder = DeliveryRecorder(plan.sender_names, nodes=plan.nodes if plan.addresses else None)
        self.kernel_clock = registrar.kernel_clock
        #: kernel clock: read time minus the kernel's arrival stamp, once per read (us)
        self.receive_lag = LatencyHistogram()
        self.unstamped_reads = 0  #: kernel clock asked for, but a read came without a stamp
        self.rx_lags: list[int] = []  #: not yet in receive_lag (added each housekeeping round)
        #: CLOCK_REALTIME minus CLOCK_MONOTONIC (ns), refreshed every housekeeping
        #: round: the kernel stamps are realtime, the probes monotonic.
        self.realtime_offset_ns = rxstamp.realtime_offset_ns()
        self.bytes_in = 0
        #: when the last bytes arrived on any connection (monotonic ns; 0: never)
        self.last_rx_ns = 0
        self.recv_buffer = memoryview(bytearray(RECV_BYTES))
        self.recv_views = [self.recv_buffer]

    def housekeeping(self) -> None:
        """Refresh the clock offset and move the read lags into their histogram."""
        self.realtime_offset_ns = rxstamp.realtime_offset_ns()
        if self.rx_lags:
            self.receive_lag.record_many(self.rx_lags)
            self.rx_lags = []

    def readable(self, conn: Conn) -> None:
        """``conn`` has bytes (or its end) to read."""
        got = self._read(conn)
        if got is None:
            return
        data, now = got
        if conn.state != READY:
            rest = self.registrar.receive(conn, data)
            if rest is not None:  # lines after the registration are traffic
                self._traffic(conn, rest, now)
            return
        tracker = conn.tracker
        if tracker is None:
            if self.translate is None:
                return  # a sender that is not a measured receiver: read and discard
            try:
                lines = conn.decoder.feed(data)
            except self.line_errors:
                self.sockets.close(conn, "line too long")
                return
            self._traffic(conn, lines, now)
            return
        try:
            block = conn.decoder.feed_block(data)
        except self.line_errors:
            self.sockets.close(conn, "line too long")
            return
        chat = self.translate_block(block)
        if chat is not None:
            # The recorder takes the whole buffer at once (vectorised when it is all probes).
            self._controls(conn, self.recorder.receive_block(tracker, conn.spec.cid, chat, now))
            return
        self._traffic(conn, self.split_block(block), now)

    def _read(self, conn: Conn) -> tuple[bytes, int] | None:
        """One ``recv``: the bytes and their receive time, or None when there
        were none (or the connection ended)."""
        stamp = 0
        stamped = self.kernel_clock and conn.state == READY and conn.tracker is not None
        try:
            # Into one reused buffer: a fresh 256 KiB bytes object per recv is
            # an mmap + mremap + munmap (and a TLB shootdown) every time.
            if stamped:
                n, stamp = rxstamp.recv_stamped(conn.sock, self.recv_views, self.realtime_offset_ns)
            else:
                n = conn.sock.recv_into(self.recv_buffer)
            data = self.recv_buffer[:n].tobytes()
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            self.registrar.end(conn, f"recv: {exc.strerror or exc}")
            return None
        now = time.monotonic_ns()
        if stamped and not stamp:
            self.unstamped_reads += 1
        if stamp:
            # The kernel's arrival time, on the monotonic clock; never later
            # than the read (a clock-offset error of a few us must not make
            # a delivery look older than it can be).
            lag = now - stamp
            if lag > 0:
                self.rx_lags.append(lag // 1000)
                now = stamp
            else:
                self.rx_lags.append(0)
        if self.quickack:
            # Re-arm after every read (the kernel drops back to delayed ACKs).
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        if not data:
            self.registrar.end(conn, "closed by server" if conn.state == READY else "closed during registration")
            return None
        self.bytes_in += len(data)
        self.last_rx_ns = now
        return data, now

    def _traffic(self, conn: Conn, lines: list[bytes], now: int) -> None:
        """The hook between the socket and the recorder: the adapter (if it
        translates) classifies the lines first and answers what needs it."""
        if not lines:
            return
        if self.translate is not None:
            incoming = self.translate(lines)
            if incoming.reply:
                self.send_control(conn, incoming.reply)
            if incoming.ended is not None:
                conn.end_reason = incoming.ended
            lines = incoming.lines
            if not lines:
                return
        if conn.tracker is None:
            return
        self._controls(conn, self.recorder.feed(conn.tracker, conn.spec.cid, lines, now))

    def _controls(self, conn: Conn, texts: list[str]) -> None:
        """Lines the recorder did not take: the adapter says if one ends the connection."""
        for text in texts:
            reason = self.control(text)
            if reason is not None:
                conn.end_reason = reason
