"""The swarm worker's receive path, without sockets.

:func:`receive` is what :class:`bench.worker.Worker` does with every
``recv`` buffer of a registered receiver; :mod:`bench.replay` runs the same
function over a generated stream to measure the harness's own cost.
"""

from __future__ import annotations

from bench import workload
from bench.integrity import DUPLICATE, IntegrityTracker, probe_header
from bench.stats import LatencyHistogram
from server import protocol


class DeliveryRecorder:
    """The receive path, without sockets: what a worker does with the lines of
    one ``recv`` buffer.  Also usable on its own to replay recorded traffic
    (a benchmark of the harness's own cost).

    Per line: ``protocol.split_message``; non-probe chat lines are ignored;
    probes are parsed and checksummed (:func:`workload.parse_probe`), checked
    against the sender's chat name, accounted in the receiver's
    :class:`IntegrityTracker`, and -- if intended at or after
    ``measure_start_ns`` -- their latency ``now - intended`` (microseconds)
    goes into the histogram, one ``record_many`` per call.
    """

    __slots__ = (
        "delivered_all",
        "delivered_measured",
        "echoes",
        "hist",
        "last_measured_recv_ns",
        "lines",
        "measure_start_ns",
        "sender_names",
    )

    def __init__(self, sender_names: dict[int, str], measure_start_ns: int = 0) -> None:
        self.sender_names = sender_names
        self.measure_start_ns = measure_start_ns
        self.hist = LatencyHistogram()
        self.delivered_all = 0  #: intact, first-time deliveries, warm-up included
        self.delivered_measured = 0  #: the same, measured messages only
        self.last_measured_recv_ns = 0
        self.echoes = 0  #: a receiver's own messages coming back (our server never does this)
        self.lines = 0

    def feed(self, tracker: IntegrityTracker, own: int, lines: list[bytes], now: int) -> list[str]:
        """Account ``lines`` received by the receiver ``own`` at ``now``
        (``time.monotonic_ns()``).  Returns the lines that are not chat
        messages (notices, errors), for the caller to look at."""
        self.lines += len(lines)
        split_message = protocol.split_message
        decode_text = protocol.decode_text
        parse_probe = workload.parse_probe
        is_probe = workload.is_probe
        observe = tracker.observe
        names = self.sender_names
        measure_start = self.measure_start_ns
        latencies: list[int] = []
        other: list[str] = []
        delivered = 0
        for line in lines:
            text = decode_text(line)
            msg = split_message(text)
            if msg is None:
                other.append(text)
                continue
            name, body = msg
            if not is_probe(body):
                continue
            try:
                probe = parse_probe(body)
            except workload.CorruptProbe:
                header = probe_header(body)
                if header is None:
                    tracker.observe_corrupt()
                else:
                    tracker.observe_corrupt(*header)
                continue
            sender = probe.sender
            if sender == own:
                self.echoes += 1
                continue
            if names.get(sender) != name:  # attributed to the wrong sender
                tracker.observe_corrupt(sender, probe.seq)
                continue
            if observe(sender, probe.seq) == DUPLICATE:
                continue
            delivered += 1
            intended = probe.intended_ns
            if intended >= measure_start:
                latencies.append((now - intended) // 1000)
        if delivered:
            self.delivered_all += delivered
        if latencies:
            self.delivered_measured += len(latencies)
            self.last_measured_recv_ns = now
            self.hist.record_many(latencies)
        return other

    def receive(
        self, decoder: protocol.LineDecoder, tracker: IntegrityTracker, own: int, data: bytes, now: int
    ) -> list[str]:
        """One ``recv`` buffer of the registered receiver ``own``, received at
        ``now``: what the worker does per ``recv``.  ``decoder`` is that
        connection's line decoder.  Returns the lines that are not chat
        messages (notices, errors).  Raises :class:`protocol.LineTooLong`
        like the decoder."""
        return self.feed(tracker, own, decoder.feed(data), now)
