"""One fan-out group on one target, measuring bursts.

A :class:`FanoutGroup` registers one sender and N receivers (plus, for the
regression the gate must catch, clients that never read) through the
harness's blocking client (:class:`bench.wire.client.WireClient`), then
measures bursts: the sender writes ``lines`` probes at once, a single
``selectors`` loop receives with kernel receive stamps until every receiver
has every byte, and afterwards every line is decoded (through
:mod:`server.protocol`) and every probe checked (:mod:`bench.measure.probe`),
so a wrong, lost or extra line fails the run instead of skewing it.
"""

from __future__ import annotations

import logging
import selectors
import socket
import time
from dataclasses import dataclass, field

from bench.gate.scenario import (
    FILLER_NAME,
    HANDSHAKE_TIMEOUT,
    PREFILL_BLOCKED_SECONDS,
    PREFILL_LIMIT_BYTES,
    PREFILL_TEXT_CHARS,
    RECEIVER_PREFIX,
    SENDER_ID,
    SENDER_NAME,
    STALLED_PREFIX,
    STALLED_RCVBUF,
    GateError,
    Scenario,
)
from bench.measure.probe import CorruptProbe, encode_probe, make_payload, parse_probe
from bench.measure.stats import LatencyHistogram
from bench.net import stamps as rxstamp
from bench.wire.client import WireClient
from bench.wire.lines import BlockLineDecoder
from server import protocol

log = logging.getLogger(__name__)

#: Longest line a receiver accepts: the server's line limit plus what it
#: adds in front of a relayed line (``NAME: ``).
RECEIVE_LINE_LIMIT = protocol.DEFAULT_MAX_LINE_BYTES + protocol.SERVER_LINE_OVERHEAD
#: Bytes of the burst loop's one receive buffer.
RECV_BUFFER_BYTES = 1 << 18


class Member:
    """One registered connection of a group, with its burst state."""

    __slots__ = ("chunks", "client", "decoder", "expected", "name", "received", "sock")

    def __init__(self, address: tuple[str, int], name: str, rcvbuf: int | None = None) -> None:
        self.decoder = BlockLineDecoder(RECEIVE_LINE_LIMIT)
        self.client = WireClient.connect(address, name, timeout=HANDSHAKE_TIMEOUT, rcvbuf=rcvbuf, decoder=self.decoder)
        self.sock: socket.socket = self.client.sock
        self.name = name
        self.expected = 0
        self.received = 0
        self.chunks: list[tuple[int, bytes]] = []

    def await_names(self, kind: type[protocol.Joined | protocol.Left], names: set[str], deadline: float) -> None:
        """Read until a ``kind`` notice (join or leave) arrived for each of
        ``names``, skipping other notices; refusals are errors."""
        awaited = set(names)
        while awaited:
            event = protocol.parse_server_line(protocol.decode_text(self.client.next_line(deadline)))
            if isinstance(event, kind):
                awaited.discard(event.name)
            elif isinstance(event, protocol.Error | protocol.Disconnected):
                raise GateError(f"{self.name}: the target said {event!r}")

    def close(self) -> None:
        self.client.close()


@dataclass(slots=True)
class BurstResult:
    """One round against one target."""

    #: Burst start until the last receiver had its last byte (µs); for a
    #: burst that timed out, the timeout (a lower bound).
    fanout_us: int
    p50_us: int
    p99_us: int
    deliveries: int
    #: Receivers that did not get every line before the timeout.
    incomplete: int = 0
    histogram: LatencyHistogram = field(default_factory=LatencyHistogram)

    @property
    def timed_out(self) -> bool:
        return self.incomplete > 0


class FanoutGroup:
    """One sender and N receivers (plus optional non-reading clients)
    registered on one target, measuring bursts."""

    def __init__(self, address: tuple[str, int], scenario: Scenario, stalled: int) -> None:
        self.scenario = scenario
        self._stalled: list[Member] = []
        self._receivers: list[Member] = []
        self._sender: Member | None = None
        self._filler: Member | None = None
        self._selector = selectors.DefaultSelector()
        self._payloads = [make_payload(scenario.payload, SENDER_ID, i) for i in range(scenario.lines)]
        self._seq = 0
        #: Chunks whose arrival time came from the harness's clock because
        #: the kernel gave no receive timestamp.
        self.unstamped_chunks = 0
        #: (first seq, fan-out µs, incomplete receivers) of a transfer not yet finished.
        self._pending: tuple[int, int, int] | None = None
        self.broken = False
        try:
            self._register(address, stalled)
            self._settle(stalled)
        except BaseException:
            self.close()
            raise

    def _register(self, address: tuple[str, int], stalled: int) -> None:
        # Non-readers join first, so they come first in the server's
        # member list: a sender blocked on them blocks everyone.
        for i in range(stalled):
            self._stalled.append(Member(address, f"{STALLED_PREFIX}{i}", rcvbuf=STALLED_RCVBUF))
        for i in range(self.scenario.clients):
            self._receivers.append(Member(address, f"{RECEIVER_PREFIX}{i:03d}"))
        if stalled:
            self._filler = Member(address, FILLER_NAME)
        self._sender = Member(address, SENDER_NAME)

    def _settle(self, stalled: int) -> None:
        """Wait until no setup traffic is left, then arm the receivers."""
        assert self._sender is not None
        late = {SENDER_NAME, FILLER_NAME} if stalled else {SENDER_NAME}
        # Each receiver gets a join notice for everyone who registered
        # after it (in any order: joins are broadcast by the joiners'
        # own threads); after those, no setup traffic is left.
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT
        for i, receiver in enumerate(self._receivers):
            receiver.await_names(protocol.Joined, {r.name for r in self._receivers[i + 1 :]} | late, deadline)
        if stalled and not self._prefill():
            # The server cut the stalled clients off instead of blocking:
            # everyone gets their leave notices; take them out of the way.
            deadline = time.monotonic() + HANDSHAKE_TIMEOUT
            for receiver in self._receivers:
                receiver.await_names(protocol.Left, {c.name for c in self._stalled}, deadline)
        for receiver in self._receivers:
            if receiver.decoder.buffered:
                raise GateError(f"{receiver.name}: unexpected partial line after setup")
            rxstamp.enable(receiver.sock)
            receiver.sock.setblocking(False)
            self._selector.register(receiver.sock, selectors.EVENT_READ, receiver)
        self._sender.sock.settimeout(self.scenario.burst_timeout)

    def close(self) -> None:
        self._selector.close()
        for client in [*self._stalled, *self._receivers, self._filler, self._sender]:
            if client is not None:
                client.close()

    def _prefill(self) -> bool:
        """Fill the stalled clients' buffers through private messages from
        the filler.  True if the server stopped reading the filler (it is
        stuck on a stalled client), False if everything was taken."""
        assert self._filler is not None
        text = make_payload(PREFILL_TEXT_CHARS)
        # A client command line: "/msg NAME TEXT" (see protocol.COMMAND_USAGE).
        chunk = b"".join(protocol.encode_line(f"/msg {c.name} {text}") for c in self._stalled) * 16
        sock = self._filler.sock
        sock.settimeout(PREFILL_BLOCKED_SECONDS)
        sent = 0
        while sent < PREFILL_LIMIT_BYTES:
            try:
                sock.sendall(chunk)
            except TimeoutError:
                log.debug("prefill: the server stopped reading after %d bytes", sent)
                return True
            sent += len(chunk)
        return False

    def burst(self) -> BurstResult:
        """One round: :meth:`transfer`, then :meth:`finish`."""
        self.transfer()
        return self.finish()

    def transfer(self) -> None:
        """Send ``lines`` probes in one write and wait until every receiver
        has all of their bytes (or the burst timeout passes).  Only this is
        timed; :meth:`finish` decodes and checks what arrived."""
        if self.broken:
            raise GateError("this target already stalled; no further bursts possible")
        if self._pending is not None:
            raise GateError("finish() the previous burst first")
        assert self._sender is not None
        scenario = self.scenario
        seq0 = self._seq
        self._seq += scenario.lines
        receivers = self._receivers
        t0 = time.monotonic_ns()
        texts = [encode_probe(SENDER_ID, seq0 + i, t0, payload) for i, payload in enumerate(self._payloads)]
        data = b"".join(protocol.encode_say(text) for text in texts)
        expected = sum(len(protocol.encode_message(SENDER_NAME, text)) for text in texts)
        for receiver in receivers:
            receiver.expected = expected
            receiver.received = 0
            receiver.chunks = []
        deadline = t0 + int(scenario.burst_timeout * 1e9)
        # Kernel stamps are CLOCK_REALTIME; this offset maps them onto the
        # monotonic clock of t0 (a burst lasts milliseconds: no drift).
        realtime_offset = rxstamp.realtime_offset_ns()
        try:
            self._sender.sock.sendall(data)
        except TimeoutError:
            pass  # the target stopped reading from the sender: stalled, shows below
        pending = len(receivers)
        select = self._selector.select
        monotonic_ns = time.monotonic_ns
        recv_stamped = rxstamp.recv_stamped
        buffer = memoryview(bytearray(RECV_BUFFER_BYTES))
        views = [buffer]
        unstamped = 0
        # The hot loop: recv and timestamp, nothing else.
        while pending:
            remaining = (deadline - monotonic_ns()) / 1e9
            if remaining <= 0:
                break
            for key, _ in select(remaining):
                receiver = key.data
                try:
                    n, arrived = recv_stamped(receiver.sock, views, realtime_offset)
                except BlockingIOError:
                    continue
                chunk = buffer[:n].tobytes()
                if not arrived:
                    arrived = monotonic_ns()
                    unstamped += 1
                if not chunk:
                    raise GateError(f"{receiver.name}: the target closed the connection mid-burst")
                receiver.chunks.append((arrived, chunk))
                receiver.received += len(chunk)
                if receiver.received >= receiver.expected and receiver.received - len(chunk) < receiver.expected:
                    pending -= 1
        self.unstamped_chunks += unstamped
        incomplete = sum(1 for r in receivers if r.received < r.expected)
        if incomplete:
            self.broken = True
            fanout_us = int(scenario.burst_timeout * 1e6)
        else:
            fanout_us = (max(r.chunks[-1][0] for r in receivers) - t0) // 1000
        self._pending = (seq0, fanout_us, incomplete)

    def finish(self) -> BurstResult:
        """Decode and check the last :meth:`transfer`; its result."""
        if self._pending is None:
            raise GateError("no burst to finish")
        seq0, fanout_us, incomplete = self._pending
        self._pending = None
        latencies = self._decode(seq0, complete=not incomplete)
        hist = LatencyHistogram()
        hist.record_many(latencies)
        if incomplete:
            p50 = p99 = fanout_us  # censored: at least this
        else:
            p50, p99 = hist.percentile(50.0), hist.percentile(99.0)
        return BurstResult(fanout_us, p50, p99, len(latencies), incomplete, hist)

    @property
    def pending(self) -> bool:
        return self._pending is not None

    def _decode(self, seq0: int, complete: bool) -> list[int]:
        """Decode every receiver's bytes and check every probe; returns the
        per-delivery latencies in µs."""
        latencies: list[int] = []
        lines = self.scenario.lines
        for receiver in self._receivers:
            seq = seq0
            for arrived_ns, chunk in receiver.chunks:
                for line in receiver.decoder.feed(chunk):
                    text = protocol.decode_text(line)
                    event = protocol.parse_server_line(text)
                    if not isinstance(event, protocol.Message) or event.sender != SENDER_NAME:
                        raise GateError(f"{receiver.name}: unexpected line from the target: {text[:120]!r}")
                    try:
                        probe = parse_probe(event.text)
                    except CorruptProbe as exc:
                        raise GateError(f"{receiver.name}: corrupted probe ({exc}): {text[:120]!r}") from exc
                    if probe.seq != seq or probe.sender != SENDER_ID:
                        raise GateError(f"{receiver.name}: expected probe {seq}, got {probe.sender}/{probe.seq}")
                    seq += 1
                    latencies.append((arrived_ns - probe.intended_ns) // 1000)
            if complete and (seq != seq0 + lines or receiver.decoder.buffered):
                raise GateError(f"{receiver.name}: got {seq - seq0} of {lines} lines and extra bytes")
        return latencies
