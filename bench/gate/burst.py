"""One fan-out group on one target, measuring bursts.

A :class:`FanoutGroup` registers one sender and N receivers (plus, for the
regression the gate must catch, clients that never read: our protocol only)
through the harness's blocking client (:class:`bench.wire.client.WireClient`)
in the target's protocol, waits until the registrations' traffic is over,
then measures bursts: the sender writes ``lines`` probes at once, a single
``selectors`` loop reads every receiver through the harness's one receive
path (:class:`bench.net.rx.StampedReader` with kernel receive stamps, then
:class:`bench.net.rx.ReceivePath`: the protocol adapter's deliveries, the
recorder's checks) until every receiver has every probe, so a lost,
repeated, reordered or corrupted probe fails the run instead of skewing it.
The same group works against every protocol (our server, the calibration
relay, redis, nats, mosquitto, WebSocket, IRC).
"""

from __future__ import annotations

import logging
import selectors
import socket
import time
from dataclasses import dataclass, field

from bench import wire
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
from bench.measure.integrity import IntegrityTracker
from bench.measure.probe import encode_probe, make_payload
from bench.measure.recorder import DeliveryRecorder
from bench.measure.stats import LatencyHistogram
from bench.net.rx import ReceivePath, StampedReader
from bench.wire.client import PLAIN, Access, WireClient
from server import protocol

log = logging.getLogger(__name__)

#: Bytes of the burst loop's one receive buffer.
RECV_BUFFER_BYTES = 1 << 18
#: Setup is over once no member received a byte for this long (join notices,
#: a broker's subscription confirmations).
SETTLE_QUIET_S = 0.25
#: Client ids of the receivers: RECEIVER_BASE + i (the sender is SENDER_ID).
RECEIVER_BASE = 1000


def member_names(clients: int, stalled: int) -> list[tuple[int, str]]:
    """Every connection a group opens: (login index, name) (see :meth:`Member.join`)."""
    names = [(0, f"{STALLED_PREFIX}{i}") for i in range(stalled)]
    names += [(i, f"{RECEIVER_PREFIX}-{i:03d}") for i in range(clients)]
    names += [(0, FILLER_NAME)] if stalled else []
    return [*names, (0, SENDER_NAME)]


class Member:
    """One registered connection of a group."""

    __slots__ = ("cid", "client", "done_ns", "name", "sock", "tracker")

    def __init__(self, cid: int, client: WireClient) -> None:
        self.cid = cid
        self.client = client
        self.sock: socket.socket = client.sock
        self.name = client.name
        self.tracker = IntegrityTracker()
        self.done_ns = 0  #: arrival of the read that completed the current burst

    @classmethod
    def join(
        cls,
        cid: int,
        address: tuple[str, int],
        name: str,
        protocol_name: str,
        *,
        rcvbuf: int | None = None,
        access: Access = PLAIN,
    ) -> Member:
        """Connect (over TLS with ``access.tls``) and register ``name``
        (logging in with its login; a sender of a protocol whose subscribers
        cannot publish registers as a sending-only connection)."""
        client = WireClient.open(address, protocol_name, HANDSHAKE_TIMEOUT, rcvbuf, tls=access.tls)
        try:
            sender_only = name == SENDER_NAME and not client.adapter.senders_receive
            login = access.login(cid - RECEIVER_BASE if cid >= RECEIVER_BASE else 0)
            client.register(name, time.monotonic() + HANDSHAKE_TIMEOUT, sender_only=sender_only, credentials=login)
        except BaseException:
            client.close()
            raise
        return cls(cid, client)

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

    def __init__(
        self,
        address: tuple[str, int],
        scenario: Scenario,
        stalled: int,
        protocol_name: str = "chat",
        access: Access = PLAIN,
    ) -> None:
        self.scenario = scenario
        self.access = access
        self.adapter = wire.get(protocol_name)
        if stalled and protocol_name != "chat":
            raise GateError(
                f"non-reading clients are filled with private messages: our chat protocol only, not {protocol_name}"
            )
        self.protocol = protocol_name
        self._stalled: list[Member] = []
        self._receivers: list[Member] = []
        self._sender: Member | None = None
        self._filler: Member | None = None
        self._selector = selectors.DefaultSelector()
        self._payloads = [make_payload(scenario.payload, SENDER_ID, i) for i in range(scenario.lines)]
        self._seq = 0
        self.reader = StampedReader(kernel=True, buffer_bytes=RECV_BUFFER_BYTES)
        #: (fan-out µs, incomplete receivers, the burst's latencies) of a transfer not yet finished.
        self._pending: tuple[int, int, LatencyHistogram] | None = None
        self.broken = False
        try:
            self._register(address, stalled)
            self._settle(stalled)
        except BaseException:
            self.close()
            raise

    @property
    def unstamped_chunks(self) -> int:
        """Reads whose arrival time came from the harness's clock because the
        kernel gave no receive timestamp."""
        return self.reader.unstamped_reads

    def _register(self, address: tuple[str, int], stalled: int) -> None:
        # Non-readers join first, so they come first in the server's
        # member list: a sender blocked on them blocks everyone.
        name = self.protocol
        access = self.access
        for i in range(stalled):
            self._stalled.append(
                Member.join(-1 - i, address, f"{STALLED_PREFIX}{i}", name, rcvbuf=STALLED_RCVBUF, access=access)
            )
        for i in range(self.scenario.clients):
            self._receivers.append(
                Member.join(RECEIVER_BASE + i, address, f"{RECEIVER_PREFIX}-{i:03d}", name, access=access)
            )
        if stalled:
            self._filler = Member.join(-1 - stalled, address, FILLER_NAME, name, access=access)
        self._sender = Member.join(SENDER_ID, address, SENDER_NAME, name, access=access)

    def _settle(self, stalled: int) -> None:
        """Wait until no setup traffic is left, then arm the receivers."""
        assert self._sender is not None
        readers = [*self._receivers, self._sender]
        self._drain_until_quiet(readers)
        if stalled and not self._prefill():
            # The server cut the stalled clients off instead of blocking:
            # everyone gets their leave notices; take them out of the way.
            self._drain_until_quiet(readers)
        for receiver in self._receivers:
            if not self.reader.enable(receiver.sock):
                raise GateError("kernel receive stamps (SO_TIMESTAMPNS) are needed: Linux only")
            receiver.sock.setblocking(False)
            self._selector.register(receiver.sock, selectors.EVENT_READ, receiver)
        self._sender.sock.settimeout(self.scenario.burst_timeout)

    def _drain_until_quiet(self, members: list[Member]) -> None:
        """Read and drop what ``members`` receive until nothing came for
        :data:`SETTLE_QUIET_S` (answering what needs an answer, e.g. PING)."""
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT
        with selectors.DefaultSelector() as sel:
            for member in members:
                member.client.take_lines()
                member.sock.setblocking(False)
                sel.register(member.sock, selectors.EVENT_READ, member)
            while time.monotonic() < deadline:
                ready = sel.select(SETTLE_QUIET_S)
                if not ready:
                    break
                for key, _ in ready:
                    self._discard(key.data)
            else:
                raise GateError(f"the target kept talking for {HANDSHAKE_TIMEOUT:g}s after registration")
        for member in members:
            member.sock.setblocking(True)

    def _discard(self, member: Member) -> None:
        try:
            data = member.sock.recv(RECV_BUFFER_BYTES)
        except BlockingIOError:
            return
        if not data:
            raise GateError(f"{member.name}: the target closed the connection during setup")
        got = self.adapter.deliveries(member.client.decoder.feed_block(data))
        if got.reply:
            member.sock.sendall(got.reply)
        if got.ended is not None:
            raise GateError(f"{member.name}: {got.ended}")

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
        """Send ``lines`` probes in one write and read every receiver through
        the receive path until each has every probe (or the burst timeout
        passes).  :meth:`finish` gives the result."""
        if self.broken:
            raise GateError("this target already stalled; no further bursts possible")
        if self._pending is not None:
            raise GateError("finish() the previous burst first")
        sender = self._sender
        assert sender is not None
        scenario = self.scenario
        seq0 = self._seq
        self._seq += scenario.lines
        recorder = DeliveryRecorder({SENDER_ID: SENDER_NAME})
        path = ReceivePath(self.adapter, recorder)
        t0 = time.monotonic_ns()
        texts = [encode_probe(SENDER_ID, seq0 + i, t0, payload) for i, payload in enumerate(self._payloads)]
        data = b"".join(self.adapter.encode_message(SENDER_NAME, text) for text in texts)
        self.reader.housekeeping()  # the clock offset, fresh: a burst lasts milliseconds
        try:
            sender.sock.sendall(data)
        except TimeoutError:
            pass  # the target stopped reading from the sender: stalled, shows below
        incomplete = self._receive(path, seq0 + scenario.lines, t0 + int(scenario.burst_timeout * 1e9))
        if incomplete:
            self.broken = True
            fanout_us = int(scenario.burst_timeout * 1e6)
        else:
            fanout_us = (max(r.done_ns for r in self._receivers) - t0) // 1000
        self._pending = (fanout_us, incomplete, recorder.hist)

    def _receive(self, path: ReceivePath, end_seq: int, deadline_ns: int) -> int:
        """Read until every receiver has probes up to ``end_seq``; how many did not."""
        for receiver in self._receivers:
            receiver.done_ns = 0
        pending = len(self._receivers)
        select = self._selector.select
        read = self.reader.read
        take = path.take
        while pending:
            remaining = (deadline_ns - time.monotonic_ns()) / 1e9
            if remaining <= 0:
                break
            for key, _ in select(remaining):
                receiver = key.data
                try:
                    got = read(receiver.sock)
                except BlockingIOError:
                    continue
                if not got.data:
                    raise GateError(f"{receiver.name}: the target closed the connection mid-burst")
                incoming = take(receiver.client.decoder, receiver.tracker, receiver.cid, got)
                if incoming.reply:
                    receiver.sock.sendall(incoming.reply)
                if incoming.ended is not None:
                    raise GateError(f"{receiver.name}: {incoming.ended}")
                tracker = receiver.tracker
                if tracker.duplicated or tracker.reordered or tracker.corrupted:
                    raise GateError(f"{receiver.name}: a probe arrived damaged, twice or out of order")
                if not receiver.done_ns and tracker.next_seq(SENDER_ID) >= end_seq:
                    lost = tracker.gaps().get(SENDER_ID, 0)
                    if lost:
                        raise GateError(f"{receiver.name}: {lost} probe(s) of the burst never arrived")
                    receiver.done_ns = got.arrival_ns
                    pending -= 1
        return pending

    def finish(self) -> BurstResult:
        """The last :meth:`transfer`'s result."""
        if self._pending is None:
            raise GateError("no burst to finish")
        fanout_us, incomplete, hist = self._pending
        self._pending = None
        if incomplete:
            p50 = p99 = fanout_us  # censored: at least this
        else:
            missing = sum(self.scenario.lines for r in self._receivers) - hist.count
            if missing:
                raise GateError(f"{missing} probes of the burst were not measured")
            p50, p99 = hist.percentile(50.0), hist.percentile(99.0)
        return BurstResult(fanout_us, p50, p99, hist.count, incomplete, hist)

    @property
    def pending(self) -> bool:
        return self._pending is not None
