"""Read a socket with its kernel receive stamp, and hand the bytes to the recorder.

:class:`StampedReader` is every receive loop's read: one reused buffer (a
fresh 256 KiB bytes object per ``recv`` is an mmap + mremap + munmap, and a
TLB shootdown, every time), the kernel's arrival stamp of the read on the
``time.monotonic_ns()`` clock (:mod:`bench.net.stamps`; a read that gathers
several segments gets the newest one's stamp, so earlier lines are stamped
late, never early), and the harness's own read lag (read time minus stamp),
measured apart so a busy harness is not counted as server latency.

:class:`ReceivePath` is what happens to the bytes: the connection's decoder
cuts whole lines, the protocol adapter says which are deliveries
(:meth:`bench.wire.Adapter.deliveries`), the recorder accounts them
(:class:`bench.measure.recorder.DeliveryRecorder`), and the lines that are
not deliveries go back to the adapter (:meth:`bench.wire.Adapter.control`)
to say whether the server is ending the connection.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from bench.measure.integrity import IntegrityTracker
from bench.measure.recorder import DeliveryRecorder
from bench.measure.stats import LatencyHistogram
from bench.net import stamps
from bench.wire import Adapter, Decoder, Incoming

#: Bytes asked of the kernel per ``recv``: big enough that one call drains a
#: burst of fan-out lines, so the per-call costs are spread over many lines.
RECV_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Read:
    """One read: its bytes (empty: the peer closed) and when they arrived."""

    data: bytes
    arrival_ns: int  #: the kernel's stamp, or the read's own time without one


class StampedReader:
    """Reads sockets into one reused buffer, each read with its arrival time.

    ``kernel``: use the kernel's receive stamps (sockets must have them on:
    :func:`enable`); otherwise the arrival is the time the read returned.
    """

    def __init__(self, kernel: bool = True, buffer_bytes: int = RECV_BYTES) -> None:
        self.kernel = kernel and stamps.supported()
        self.buffer = memoryview(bytearray(buffer_bytes))
        self._views = [self.buffer]
        #: kernel clock: read time minus the kernel's arrival stamp, once per read (us)
        self.receive_lag = LatencyHistogram()
        #: the same, since its owner last emptied it (the time axis' share of the read lags)
        self.interval_lag = LatencyHistogram()
        self._lags: list[int] = []  # not yet in receive_lag (added by housekeeping)
        self.unstamped_reads = 0  #: stamps asked for, but a read came without one
        #: CLOCK_REALTIME minus CLOCK_MONOTONIC (ns): the kernel stamps are realtime
        self.realtime_offset_ns = stamps.realtime_offset_ns()

    def enable(self, sock: socket.socket) -> bool:
        """Ask the kernel to stamp what ``sock`` receives (well before the
        traffic to be timed: see :func:`bench.net.stamps.enable`)."""
        return self.kernel and stamps.enable(sock)

    def housekeeping(self) -> None:
        """Refresh the clock offset and move the read lags into their histograms.

        One numpy array for both (``record_array``, ~0.1 us a read): with
        ``record_many`` (~0.5 us a value) for one of them, a Locust process
        reading ~18,000 times a second spent 1.2-2.4 ms here every 100 ms,
        in which no connection was read -- read lags of that much at about
        the 99th percentile, the tail issue 29 measured."""
        self.realtime_offset_ns = stamps.realtime_offset_ns()
        if self._lags:
            import numpy as np

            lags = np.array(self._lags, dtype=np.int64)  # us, from monotonic ns: never past int64
            self._lags = []
            self.receive_lag.record_array(lags)
            self.interval_lag.record_array(lags)

    def read(self, sock: socket.socket, stamped: bool = True) -> Read:
        """One ``recv`` (``stamped``: with the kernel's stamp, if this reader
        uses them).  Raises what ``recv`` raises (``BlockingIOError`` on a
        non-blocking socket with nothing to read)."""
        stamp = 0
        if stamped and self.kernel:
            n, stamp = stamps.recv_stamped(sock, self._views, self.realtime_offset_ns)
        else:
            n = sock.recv_into(self.buffer)
        data = self.buffer[:n].tobytes()
        now = time.monotonic_ns()
        if stamp:
            # The kernel's arrival time, on the monotonic clock; never later
            # than the read (a clock-offset error of a few us must not make
            # a delivery look older than it can be).
            lag = now - stamp
            if lag > 0:
                self._lags.append(lag // 1000)
                now = stamp
            else:
                self._lags.append(0)
        elif stamped and self.kernel and n:
            self.unstamped_reads += 1
        return Read(data, now)


class ReceivePath:
    """Received bytes -> the adapter's deliveries -> the recorder, for one
    process's receivers (see the module docstring)."""

    def __init__(self, adapter: Adapter, recorder: DeliveryRecorder) -> None:
        self.adapter = adapter
        self.recorder = recorder

    def take(
        self,
        decoder: Decoder,
        tracker: IntegrityTracker | None,
        own: int,
        read: Read,
        others: list[str] | None = None,
    ) -> Incoming:
        """The whole lines ``read`` completes on a connection (its
        ``decoder``), recorded for receiver ``own`` when it is measured
        (``tracker``); the result says what to send back and whether the
        server is ending the connection.  ``others``: where to put the lines
        that are not deliveries (notices, other chat), for a caller that
        looks at them.  Raises the adapter's ``line_errors`` for a line past
        the decoder's limit."""
        return self.take_block(tracker, own, decoder.feed_block(read.data), read.arrival_ns, others)

    def take_block(
        self,
        tracker: IntegrityTracker | None,
        own: int,
        block: bytes,
        arrival_ns: int,
        others: list[str] | None = None,
    ) -> Incoming:
        """:meth:`take` for whole lines already cut (``\\n``-ended)."""
        incoming = self.adapter.deliveries(block)
        if tracker is None:
            return incoming
        recorder = self.recorder
        if incoming.pairs:
            recorder.record_pairs(tracker, own, incoming.pairs, arrival_ns)
        if incoming.lines:
            control = self.adapter.control
            for text in recorder.record_lines(tracker, own, incoming.lines, arrival_ns):
                if others is not None:
                    others.append(text)
                reason = control(text)
                if reason is not None:
                    incoming.ended = reason
        return incoming
