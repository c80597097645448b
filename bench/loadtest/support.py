"""The Locust integration's plain-Python parts: no locust, no gevent.

Everything here can be imported (and is unit-tested) without Locust's gevent
monkey-patching, which must never reach the server or the test process:
host parsing, unique identities, what a received line means for the
measurement, step-load arithmetic, and the histogram deltas workers ship to
the master.  :mod:`bench.loadtest.users`, :mod:`bench.loadtest.hdr` and
:mod:`bench.loadtest.shape` wrap these for Locust.
"""

from __future__ import annotations

import hashlib
import math
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from bench.loadtest.integrity import IntegrityState
from bench.measure.probe import CorruptProbe, encode_probe, is_probe, make_payload, parse_probe, probe_header
from bench.measure.stats import LatencyHistogram
from bench.results.schema import Latency
from bench.wire.address import AddressError, parse_address
from server import protocol

DEFAULT_PORT = 8000
DEFAULT_HOST = f"tcp://127.0.0.1:{DEFAULT_PORT}"

#: Locust request types and names (the rows of Locust's statistics).
FANOUT_TYPE = "FANOUT"
FANOUT_NAME = "broadcast"
FOREIGN_NAME = FANOUT_NAME + " (other clock)"
SEND_TYPE = "SEND"
SEND_NAME = "chat"
CONNECT_TYPE = "CONNECT"
CONNECT_NAME = "register"
RECEIVE_TYPE = "RECEIVE"
RECEIVE_NAME = "unrecognised line"

#: Room a probe needs besides its payload: tag, three integers (the sender
#: id is up to 20 digits, the timestamp 19), separators and the checksum.
PROBE_OVERHEAD = 80
#: Largest payload that keeps a probe within the server's default line limit.
MAX_PAYLOAD = protocol.DEFAULT_MAX_LINE_BYTES - PROBE_OVERHEAD
#: Longest line a receiver accepts: the server's limit plus its framing.
RECEIVE_LINE_LIMIT = protocol.DEFAULT_MAX_LINE_BYTES + protocol.SERVER_LINE_OVERHEAD


# --------------------------------------------------------------------------
# Host
# --------------------------------------------------------------------------


def parse_host(host: str | None) -> tuple[str, int]:
    """``tcp://HOST:PORT`` (the documented form), ``HOST:PORT``,
    ``[V6]:PORT`` or ``HOST`` (port 8000) to an address tuple.  Raises
    ``ValueError`` saying what is wrong."""
    try:
        address = parse_address(host or DEFAULT_HOST, schemes=("tcp",), default_scheme="tcp", default_port=DEFAULT_PORT)
    except AddressError as exc:
        raise ValueError(f"--host {exc}") from None
    return address.host, address.port


# --------------------------------------------------------------------------
# Identity
# --------------------------------------------------------------------------


def clock_tag() -> int:
    """16 bits naming this machine's monotonic clock (its boot), so a
    receiver can tell whether a sender's timestamps are comparable with its
    own: ``time.monotonic_ns()`` is one clock for every process on a machine,
    and a different one on another machine."""
    try:
        ident = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        ident = socket.gethostname()
    return int.from_bytes(hashlib.sha256(ident.encode()).digest()[:2], "big")


CLOCK_TAG = clock_tag()


def sender_clock(sender_id: int) -> int:
    return sender_id >> 48


class Identity:
    """Unique user names and probe sender ids for the users of one process.

    Names carry a random token and the pid, so users of forked
    ``--processes`` children, of other workers and of other machines never
    collide; the sender id carries :data:`CLOCK_TAG` in its top bits."""

    def __init__(self) -> None:
        self._pid = -1
        self._token = ""
        self._counter = 0

    def next(self) -> tuple[str, int]:
        pid = os.getpid()
        if pid != self._pid:  # first use, or a forked child
            self._pid = pid
            self._token = os.urandom(2).hex()
            self._counter = 0
        self._counter += 1
        name = f"lc{self._token}{pid:x}n{self._counter}"
        sender = (CLOCK_TAG << 48) | ((pid & 0xFFFFFF) << 24) | (self._counter & 0xFFFFFF)
        return protocol.validate_name(name), sender


# --------------------------------------------------------------------------
# Sending and receiving
# --------------------------------------------------------------------------


def probe_line(sender_id: int, seq: int, intended_ns: int, payload_size: int) -> bytes:
    """The bytes a user sends for one measured message."""
    return protocol.encode_say(encode_probe(sender_id, seq, intended_ns, make_payload(payload_size, sender_id, seq)))


@dataclass(frozen=True, slots=True)
class Delivery:
    """A probe from a sender on this machine: measured."""

    latency_ns: int
    length: int
    sender: int = 0
    seq: int = 0


@dataclass(frozen=True, slots=True)
class ForeignDelivery:
    """A probe from another machine: its timestamp is another clock's (its
    sequence number still counts for integrity: no clock needed)."""

    length: int
    sender: int = 0
    seq: int = 0


@dataclass(frozen=True, slots=True)
class CorruptDelivery:
    error: CorruptProbe
    length: int
    header: tuple[int, int] | None = None  #: (sender, seq) when still readable


@dataclass(frozen=True, slots=True)
class ChatLine:
    """A chat message that is not a probe."""

    sender: str
    text: str


@dataclass(frozen=True, slots=True)
class ServerLine:
    """Any other server line (joins, leaves, notices, disconnect...)."""

    event: protocol.ServerEvent


@dataclass(frozen=True, slots=True)
class BadLine:
    error: protocol.ProtocolError
    length: int


Received = Delivery | ForeignDelivery | CorruptDelivery | ChatLine | ServerLine | BadLine


def read_line(line: bytes, now_ns: int, clock: int = CLOCK_TAG) -> Received:
    """What one received line means for the measurement.  Latency is
    ``now_ns`` minus the intended send time the sender embedded."""
    text = protocol.decode_text(line)
    split = protocol.split_message(text)
    if split is None:
        try:
            return ServerLine(protocol.parse_server_line(text))
        except protocol.ProtocolError as exc:
            return BadLine(exc, len(line) + 1)
    sender, body = split
    if not is_probe(body):
        return ChatLine(sender, body)
    try:
        probe = parse_probe(body)
    except CorruptProbe as exc:
        return CorruptDelivery(exc, len(line) + 1, probe_header(body))
    if sender_clock(probe.sender) != clock:
        return ForeignDelivery(len(line) + 1, probe.sender, probe.seq)
    return Delivery(now_ns - probe.intended_ns, len(line) + 1, probe.sender, probe.seq)


# --------------------------------------------------------------------------
# Step load
# --------------------------------------------------------------------------


def step_users(elapsed: float, per_step: int, step_time: float, max_users: int) -> int:
    """Users wanted ``elapsed`` seconds into the test: one step at once,
    another every ``step_time`` seconds, never more than ``max_users``."""
    steps = int(elapsed // step_time) + 1
    return min(max_users, steps * per_step)


def step_end(per_step: int, step_time: float, max_users: int) -> float:
    """When a step test without ``-t`` ends: the step that reaches
    ``max_users`` has run for a full ``step_time``."""
    return math.ceil(max_users / per_step) * step_time


# --------------------------------------------------------------------------
# Histograms between processes
# --------------------------------------------------------------------------


class HdrOptions(TypedDict):
    """The options of the test, as Locust parsed them (None where not given)."""

    chat_rate: float | None
    chat_payload: int | None
    chat_step_load: bool | None
    num_users: int | None
    run_time: int | None


class FanoutHdrDocument(TypedDict):
    """``<csv-prefix>_fanout_hdr.json``: the exact fan-out percentiles of a Locust run
    (:meth:`bench.loadtest.hdr.FanoutRecorder.result` writes it; typed here, without gevent)."""

    schema: int
    kind: str
    unit: str
    role: str  #: local, worker or master
    host: str | None
    written_at: float  #: time.time()
    options: HdrOptions
    summary: Latency
    locust_fanout_requests: int
    locust_fanout_failures: int
    per_worker_count: dict[str, int]
    histogram: str
    integrity: IntegrityState  #: lost/duplicated/reordered/corrupted per (receiver, sender)


class HistogramDelta(TypedDict):
    """What a Locust worker attaches to a stats report: its histogram since the last one."""

    hist: str  #: LatencyHistogram.encode()
    clamped: int
    count: int


def pack_delta(hist: LatencyHistogram) -> HistogramDelta | None:
    """A histogram as the plain data a worker report can carry (None if empty)."""
    if not hist.count:
        return None
    return {"hist": hist.encode(), "clamped": hist.clamped, "count": hist.count}


def unpack_delta(data: HistogramDelta) -> LatencyHistogram:
    hist = LatencyHistogram.decode(data["hist"], int(data.get("clamped", 0)))
    if hist.count != int(data.get("count", hist.count)):
        raise ValueError(f"histogram delta holds {hist.count} values, report says {data['count']}")
    return hist


def fanout_counts(entries: Iterable[dict[str, Any]]) -> tuple[int, int]:
    """(requests, failures) of the FANOUT row in serialized Locust stats
    (Locust's own format, untyped: hence ``dict[str, Any]``)."""
    requests = failures = 0
    for entry in entries:
        if entry.get("name") == FANOUT_NAME and entry.get("method") == FANOUT_TYPE:
            requests += int(entry.get("num_requests") or 0)
            failures += int(entry.get("num_failures") or 0)
    return requests, failures


def summary_line(summary: Latency) -> str:
    """``deliveries=N p50=… p90=… p99=… p99.9=… max=…`` in milliseconds."""
    if not summary.get("count"):
        return "deliveries=0 (no fan-out deliveries were received)"

    def ms(value_us: int | None) -> str:
        return f"{(value_us or 0) / 1000:.3f}ms"

    text = (
        f"deliveries={summary['count']} p50={ms(summary['p50_us'])} p90={ms(summary['p90_us'])} "
        f"p99={ms(summary['p99_us'])} p99.9={ms(summary['p99_9_us'])} max={ms(summary['max_us'])}"
    )
    if summary.get("clamped"):
        text += f" clamped={summary['clamped']}"
    return text
