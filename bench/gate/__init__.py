"""CI regression gate on broadcast fan-out latency.

Absolute times mean nothing on a shared 2-core CI machine, so the gate never
compares them.  It measures two things side by side, in the same run, with
the same client code:

* the **server** (``python -m server``, a subprocess) relaying a burst of
  chat lines from one sender to N receivers, and
* a **calibration relay** (``python -m bench.gate --relay``, also a
  subprocess): the least a Python chat relay can do -- the same handshake,
  the same ``NAME: TEXT`` bytes (encoded by :mod:`server.protocol`), one
  blocking ``sendall`` per receiver, nothing else,

and gates on their **ratio** (server time / relay time).  Machine speed and
background load hit both, so they cancel out; a server that becomes slower
at fan-out does not cancel out.  Rounds alternate relay, server, relay,
server, ..., so both see the same machine moment by moment.

Why subprocesses: a server in the test process would share the GIL with the
measuring clients, and the measurement would partly time the harness
against itself.  Both targets run as their own process, so the comparison
is fair, and the server is started exactly as a user starts it.

The measuring clients run in one thread over one ``selectors`` loop.
Arrival times are the kernel's receive timestamps (``SO_TIMESTAMPNS``):
when the bytes reached the receiver's socket, which on loopback is when the
target's ``send`` ran -- not when the harness, competing for two cores with
everything else, got around to reading them.  (Without kernel stamps the
harness clock is used and the measurement says so.)  The hot loop only
receives; decoding (through :mod:`server.protocol`) and probe checking
(:mod:`bench.measure.probe`) happen after each burst.  A receiver is done when it
has the exact number of bytes the burst must produce (computed with
``protocol.encode_message``); afterwards every line is decoded and every
probe checked (sender, order, checksum), so a wrong, lost or extra line
fails the run instead of skewing it.

Per round and target:

* ``fanout`` -- time from the start of the burst until every receiver has
  every line;
* ``p50`` / ``p99`` -- per-delivery latency (probe's intended send time to
  arrival at one receiver), over all receivers and lines of the round.

Each is then summarised over the rounds by the mean of the faster half
(:func:`fast_half_mean`: noise only adds time), and the ratios are
server / relay.  Gated: ``fanout_ratio`` and ``p99_ratio`` (``p50_ratio`` is
reported).  The committed baseline (``bench/gate/baseline.json``) holds each
gated ratio with its tolerance; a measured ratio above
``baseline * (1 + tolerance)`` fails.  A failure is measured again before it
counts (:func:`check`); a server that stalls fails at once.

Command line::

    python -m bench.gate                    # measure, compare, exit 1 on regression
    python -m bench.gate --write-baseline   # measure --runs times, write bench/gate/baseline.json
    python -m bench.gate --fanout direct --stalled 1   # the regression the gate must catch
    python -m bench.gate --server-command "python tests/perf/slow_server.py 2 --port 0 --log-level INFO"
    python -m bench.gate --relay --port 0   # only the calibration relay (used internally)
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import logging
import os
import platform
import queue
import re
import selectors
import shlex
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from bench.measure import rxstamp
from bench.measure.probe import CorruptProbe, encode_probe, make_payload, parse_probe
from bench.measure.stats import LatencyHistogram
from server import protocol

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------
# The fixed scenario.  Changing any of these invalidates the baseline (the
# comparison refuses a baseline recorded with a different scenario).
# --------------------------------------------------------------------------

#: Receivers per burst: enough that per-recipient cost dominates the round.
DEFAULT_CLIENTS = 50
#: Lines per burst.  100 lines of ~120 bytes are ~12 KB per receiver, ~600 KB
#: per burst: about a millisecond of work on the 2-core dev VM, short enough
#: to often run between two preemptions, long enough to dwarf clock jitter.
DEFAULT_LINES = 100
#: Probe payload characters per line.
DEFAULT_PAYLOAD = 64
#: Measured rounds per target (each round is one burst).  Statistics use
#: the faster half of them (see :func:`fast_half_mean`).
DEFAULT_ROUNDS = 25
#: Rounds per target run first and thrown away (connection warm-up, writer
#: threads started, caches warm).
DEFAULT_WARMUP = 3
#: A burst not delivered completely within this many seconds means the
#: target is stalled; with a few milliseconds per burst this is very generous.
DEFAULT_BURST_TIMEOUT = 2.0
#: Seconds to wait for a target process to start listening, and for one
#: client's handshake.
STARTUP_TIMEOUT = 20.0
HANDSHAKE_TIMEOUT = 10.0
#: Receive buffer of the "stalled" client: small, so the server cannot hide
#: a non-reading client behind big kernel buffers for long.
STALLED_RCVBUF = 4096
#: A client that stopped reading long ago has full buffers: the server's
#: send buffer towards it autotunes up to 4 MiB on Linux, i.e. ~250 of the
#: gate's bursts.  Rather than waiting for that, a "filler" client sends the
#: stalled one private messages until the server stops reading the filler
#: (``direct``: its thread is stuck in a send) or this many bytes went out
#: (``queued``: the server cut the stalled client off at its send queue limit).
PREFILL_LIMIT_BYTES = 32 << 20
#: Characters of one filler message: a long line, well below the server's
#: default line limit.
PREFILL_TEXT_CHARS = 3800
#: The server has stopped reading the filler when a send blocks this long.
PREFILL_BLOCKED_SECONDS = 1.0
#: Probe sender id used by the gate (bench.measure.probe's SENDER field).
SENDER_ID = 1

SENDER_NAME = "gate-sender"
FILLER_NAME = "gate-filler"
STALLED_PREFIX = "gate-stalled"
RECEIVER_PREFIX = "gate-r"

#: The gated metrics and their meaning, for messages.
METRIC_DESCRIPTIONS: dict[str, str] = {
    "fanout_ratio": "server fan-out time / calibration relay fan-out time",
    "p99_ratio": "server p99 delivery latency / calibration relay p99 delivery latency",
}
#: Reported but not gated: p50 is dominated by the first receivers and noisy.
REPORTED_RATIOS = ("fanout_ratio", "p50_ratio", "p99_ratio")

#: Tolerances used when no baseline exists yet (see bench/gate/baseline.json for
#: the committed ones and how they were chosen).
DEFAULT_TOLERANCES: dict[str, float] = {"fanout_ratio": 0.5, "p99_ratio": 0.5}

BASELINE_PATH = Path(__file__).with_name("baseline.json")
BASELINE_SCHEMA = 1
#: Scenario fields that must match between a measurement and the baseline.
SCENARIO_KEYS = ("clients", "lines", "payload")

LISTENING = re.compile(r"listening on (\[[^\]]+\]|[^\s:]+):(\d+)")


class GateError(Exception):
    """The measurement itself failed (a target did not start, a line was
    lost or corrupted, the baseline is unusable): not a verdict."""


# --------------------------------------------------------------------------
# Scenario
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scenario:
    clients: int = DEFAULT_CLIENTS
    lines: int = DEFAULT_LINES
    payload: int = DEFAULT_PAYLOAD
    rounds: int = DEFAULT_ROUNDS
    warmup: int = DEFAULT_WARMUP
    burst_timeout: float = DEFAULT_BURST_TIMEOUT
    #: ``--fanout`` of the server under test.
    fanout: Literal["queued", "direct"] = "queued"
    #: Registered clients on the server that never read (joined first).
    stalled: int = 0
    #: Command that starts the server under test; ``None``: ``python -m
    #: server`` with ``fanout``.  It must log ``listening on HOST:PORT``.
    server_command: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.clients < 1 or self.lines < 1 or self.rounds < 1:
            raise ValueError("clients, lines and rounds must be at least 1")
        if self.payload < 0 or self.warmup < 0 or self.stalled < 0:
            raise ValueError("payload, warmup and stalled must not be negative")
        if self.burst_timeout <= 0:
            raise ValueError("burst timeout must be positive")

    def server_argv(self) -> list[str]:
        if self.server_command is not None:
            return list(self.server_command)
        return [
            sys.executable,
            "-m",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--log-level",
            "INFO",
            "--rate-limit",  # flood control off: a burst is the measurement, not a flood
            "0",
            "--fanout",
            self.fanout,
        ]

    def describe(self) -> str:
        text = f"{self.clients} receivers x {self.lines} lines ({self.payload}-char payload), fanout={self.fanout}"
        if self.stalled:
            text += f", {self.stalled} non-reading client(s)"
        return text

    def key(self) -> dict[str, int]:
        return {"clients": self.clients, "lines": self.lines, "payload": self.payload}


def relay_argv() -> list[str]:
    return [sys.executable, "-m", "bench.gate", "--relay", "--host", "127.0.0.1", "--port", "0"]


# --------------------------------------------------------------------------
# Target processes
# --------------------------------------------------------------------------


class TargetProcess:
    """A server-like subprocess that logs ``listening on HOST:PORT`` on
    stderr.  Its stderr is drained by a thread (so a chatty server never
    blocks on a full pipe) and the last lines are kept for error messages."""

    def __init__(self, argv: Sequence[str], label: str) -> None:
        self.argv = list(argv)
        self.label = label
        self.address: tuple[str, int] = ("", 0)
        self._tail: collections.deque[str] = collections.deque(maxlen=40)
        self._found: queue.Queue[tuple[str, int] | None] = queue.Queue()
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = STARTUP_TIMEOUT) -> tuple[str, int]:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        try:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
        except OSError as exc:
            raise GateError(f"cannot start {self.label} ({shlex.join(self.argv)}): {exc}") from exc
        self._reader = threading.Thread(target=self._drain, name=f"stderr-{self.label}", daemon=True)
        self._reader.start()
        try:
            found = self._found.get(timeout=timeout)
        except queue.Empty:
            found = None
        if found is None:
            self.close()
            raise GateError(
                f"{self.label} did not log 'listening on HOST:PORT' within {timeout:.0f}s "
                f"({shlex.join(self.argv)}); its stderr:\n{self.stderr_tail()}"
            )
        self.address = found
        return found

    def _drain(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        announced = False
        for line in self._proc.stderr:
            self._tail.append(line.rstrip("\n"))
            if not announced and (m := LISTENING.search(line)):
                announced = True
                self._found.put((m[1].strip("[]"), int(m[2])))
        if not announced:
            self._found.put(None)  # exited (or closed stderr) before listening

    def stderr_tail(self) -> str:
        return "\n".join(self._tail) or "(nothing)"

    def close(self) -> None:
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._reader is not None:
            self._reader.join(timeout=2)
        if proc.stderr is not None:
            proc.stderr.close()

    def __enter__(self) -> TargetProcess:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# --------------------------------------------------------------------------
# The calibration relay
# --------------------------------------------------------------------------


class CalibrationRelay:
    """The least a threaded Python chat relay does: prompt, welcome, join
    notices, and every chat line re-framed as ``NAME: TEXT`` and sent with
    one blocking ``sendall`` per receiver, in the sender's reader thread.
    No commands, no limits, no queues: the reference the server's fan-out is
    measured against.  Bytes on the wire are the server's bytes, encoded by
    the same protocol module."""

    def __init__(self, listener: socket.socket) -> None:
        self._listener = listener
        self._lock = threading.Lock()
        self._members: tuple[tuple[socket.socket, str], ...] = ()

    def serve_forever(self) -> None:
        while True:
            sock, _ = self._listener.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._session, args=(sock,), daemon=True).start()

    def _session(self, sock: socket.socket) -> None:
        decoder = protocol.LineDecoder(protocol.DEFAULT_MAX_LINE_BYTES, discard_oversized=True)
        name = ""
        try:
            sock.sendall(protocol.encode_prompt())
            lines: list[bytes] = []
            while not lines:
                data = sock.recv(65536)
                if not data:
                    return
                lines = decoder.feed(data)
            name = protocol.decode_text(lines[0]).strip()
            with self._lock:
                online = sorted([n for _, n in self._members] + [name], key=str.casefold)
                sock.sendall(protocol.encode_welcome(name, online))
                others = self._members
                self._members = (*self._members, (sock, name))
            self._send(protocol.encode_joined(name), others)
            self._relay(sock, name, lines[1:])
            while data := sock.recv(65536):
                self._relay(sock, name, decoder.feed(data))
        except OSError:
            pass
        finally:
            with self._lock:
                self._members = tuple(m for m in self._members if m[0] is not sock)
            sock.close()

    def _relay(self, sock: socket.socket, name: str, lines: list[bytes]) -> None:
        if lines:
            data = b"".join(protocol.encode_message(name, protocol.decode_text(line)) for line in lines)
            self._send(data, tuple(m for m in self._members if m[0] is not sock))

    @staticmethod
    def _send(data: bytes, members: tuple[tuple[socket.socket, str], ...]) -> None:
        for other, _ in members:
            try:
                other.sendall(data)
            except OSError:
                pass


def run_relay(host: str, port: int) -> int:
    """``--relay``: serve until killed; logs ``listening on HOST:PORT``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        listener = socket.create_server((host, port), family=family, backlog=1024)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", host, port, exc.strerror or exc)
        return 2
    bound_host, bound_port = listener.getsockname()[:2]
    log.info("listening on %s", f"[{bound_host}]:{bound_port}" if ":" in bound_host else f"{bound_host}:{bound_port}")
    try:
        CalibrationRelay(listener).serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
    return 0


# --------------------------------------------------------------------------
# Measuring clients
# --------------------------------------------------------------------------


class HarnessClient:
    """One harness connection: blocking with timeouts during setup, then
    non-blocking in the burst loop.  Everything it reads goes through
    ``protocol.LineDecoder`` and ``protocol.parse_server_line``."""

    def __init__(self, sock: socket.socket, name: str) -> None:
        self.sock = sock
        self.name = name
        self.decoder = protocol.LineDecoder(protocol.DEFAULT_MAX_LINE_BYTES + protocol.SERVER_LINE_OVERHEAD)
        self._events: collections.deque[protocol.ServerEvent] = collections.deque()
        # Burst state.
        self.expected = 0
        self.received = 0
        self.chunks: list[tuple[int, bytes]] = []
        self.kernel_stamps = False

    @classmethod
    def connect(cls, address: tuple[str, int], name: str, rcvbuf: int | None = None) -> HarnessClient:
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if rcvbuf is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(HANDSHAKE_TIMEOUT)
            sock.connect(address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client = cls(sock, name)
            deadline = time.monotonic() + HANDSHAKE_TIMEOUT
            client.expect(protocol.Prompt, deadline)
            sock.sendall(protocol.encode_line(name))
            client.expect(protocol.Welcome, deadline)
        except BaseException:
            sock.close()
            raise
        return client

    def enable_kernel_stamps(self) -> bool:
        self.kernel_stamps = rxstamp.enable(self.sock)
        return self.kernel_stamps

    def next_event(self, deadline: float) -> protocol.ServerEvent:
        while not self._events:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GateError(f"{self.name}: timed out waiting for the target")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                raise GateError(f"{self.name}: the target closed the connection")
            for line in self.decoder.feed(data):
                self._events.append(protocol.parse_server_line(protocol.decode_text(line)))
        return self._events.popleft()

    def expect(self, kind: type[protocol.ServerEvent], deadline: float) -> protocol.ServerEvent:
        """Skip notices until an event of ``kind``; refusals are errors."""
        while True:
            event = self.next_event(deadline)
            if isinstance(event, kind):
                return event
            if isinstance(event, protocol.Error | protocol.Disconnected):
                raise GateError(f"{self.name}: the target said {event!r}")

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


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
        self._stalled: list[HarnessClient] = []
        self._receivers: list[HarnessClient] = []
        self._sender: HarnessClient | None = None
        self._filler: HarnessClient | None = None
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
            # Non-readers join first, so they come first in the server's
            # member list: a sender blocked on them blocks everyone.
            for i in range(stalled):
                self._stalled.append(HarnessClient.connect(address, f"{STALLED_PREFIX}{i}", rcvbuf=STALLED_RCVBUF))
            for i in range(scenario.clients):
                self._receivers.append(HarnessClient.connect(address, f"{RECEIVER_PREFIX}{i:03d}"))
            late = [SENDER_NAME]
            if stalled:
                self._filler = HarnessClient.connect(address, FILLER_NAME)
                late.append(FILLER_NAME)
            self._sender = HarnessClient.connect(address, SENDER_NAME)
            # Each receiver gets a join notice for everyone who registered
            # after it (in any order: joins are broadcast by the joiners'
            # own threads); after those, no setup traffic is left.
            deadline = time.monotonic() + HANDSHAKE_TIMEOUT
            for i, receiver in enumerate(self._receivers):
                awaited = {r.name for r in self._receivers[i + 1 :]} | set(late)
                while awaited:
                    event = receiver.expect(protocol.Joined, deadline)
                    assert isinstance(event, protocol.Joined)
                    awaited.discard(event.name)
            if stalled and not self._prefill():
                # The server cut the stalled clients off instead of blocking:
                # everyone gets their leave notices; take them out of the way.
                deadline = time.monotonic() + HANDSHAKE_TIMEOUT
                for receiver in self._receivers:
                    gone = {c.name for c in self._stalled}
                    while gone:
                        event = receiver.expect(protocol.Left, deadline)
                        assert isinstance(event, protocol.Left)
                        gone.discard(event.name)
            for receiver in self._receivers:
                if receiver.decoder.buffered:
                    raise GateError(f"{receiver.name}: unexpected partial line after setup")
                receiver.enable_kernel_stamps()
                receiver.sock.setblocking(False)
                self._selector.register(receiver.sock, selectors.EVENT_READ, receiver)
            self._sender.sock.settimeout(scenario.burst_timeout)
        except BaseException:
            self.close()
            raise

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
        buffer = memoryview(bytearray(1 << 18))
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


# --------------------------------------------------------------------------
# A gate run: both targets, interleaved rounds, medians
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TargetSummary:
    label: str
    fanout_us: tuple[int, ...]
    p50_us: tuple[int, ...]
    p99_us: tuple[int, ...]
    #: Rounds that timed out (the target stalled); later rounds count as
    #: timed out too, without waiting, since a stalled target stays stalled.
    timed_out: int
    incomplete_receivers: int
    latency: dict[str, Any]

    @property
    def median_fanout_us(self) -> float:
        return float(statistics.median(self.fanout_us))

    @property
    def typical_fanout_us(self) -> float:
        return fast_half_mean(self.fanout_us)

    @property
    def typical_p50_us(self) -> float:
        return fast_half_mean(self.p50_us)

    @property
    def typical_p99_us(self) -> float:
        return fast_half_mean(self.p99_us)

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "typical_fanout_us": round(self.typical_fanout_us, 1),
            "typical_p50_us": round(self.typical_p50_us, 1),
            "typical_p99_us": round(self.typical_p99_us, 1),
            "median_fanout_us": self.median_fanout_us,
            "fanout_us": list(self.fanout_us),
            "p50_us": list(self.p50_us),
            "p99_us": list(self.p99_us),
            "timed_out": self.timed_out,
            "incomplete_receivers": self.incomplete_receivers,
            "latency": self.latency,
        }


@dataclass(frozen=True, slots=True)
class Measurement:
    scenario: Scenario
    server: TargetSummary
    relay: TargetSummary
    seconds: float
    #: Received chunks timed by the harness clock (no kernel stamp); 0 normally.
    unstamped_chunks: int = 0

    @property
    def stalled(self) -> bool:
        return self.server.timed_out > 0

    @property
    def ratios(self) -> dict[str, float]:
        return {
            "fanout_ratio": self.server.typical_fanout_us / max(1.0, self.relay.typical_fanout_us),
            "p50_ratio": self.server.typical_p50_us / max(1.0, self.relay.typical_p50_us),
            "p99_ratio": self.server.typical_p99_us / max(1.0, self.relay.typical_p99_us),
        }

    def to_json(self) -> dict[str, Any]:
        scenario = asdict(self.scenario)
        scenario["server_command"] = shlex.join(self.scenario.server_argv())
        return {
            "scenario": scenario,
            "ratios": {k: round(v, 4) for k, v in self.ratios.items()},
            "stalled": self.stalled,
            "server": self.server.to_json(),
            "relay": self.relay.to_json(),
            "seconds": round(self.seconds, 2),
            "arrival_clock": self.arrival_clock,
        }

    @property
    def arrival_clock(self) -> str:
        if not self.unstamped_chunks:
            return "kernel receive timestamps (SO_TIMESTAMPNS)"
        return f"harness clock for {self.unstamped_chunks} received chunks (no kernel timestamps)"


Progress = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


class GateRun:
    """Both targets started and connected; ``calibration_burst`` and
    ``server_burst`` run one round each.  Use as a context manager (the
    processes and sockets are always cleaned up)::

        with GateRun(Scenario()) as run:
            run.warm_up()
            for _ in range(run.scenario.rounds):
                run.calibration_burst()
                run.server_burst()
            measurement = run.measurement()
    """

    def __init__(self, scenario: Scenario, progress: Progress = _quiet) -> None:
        self.scenario = scenario
        self.progress = progress
        self._stack = ExitStack()
        self._server_group: FanoutGroup | None = None
        self._relay_group: FanoutGroup | None = None
        self._server: list[BurstResult] = []
        self._relay: list[BurstResult] = []
        self._censored: BurstResult | None = None
        self._started = 0.0

    def __enter__(self) -> GateRun:
        self._started = time.monotonic()
        try:
            relay = self._stack.enter_context(TargetProcess(relay_argv(), "calibration relay"))
            server = self._stack.enter_context(TargetProcess(self.scenario.server_argv(), "server"))
            self.progress(
                f"relay on {relay.address[0]}:{relay.address[1]}, server on {server.address[0]}:{server.address[1]}"
            )
            self._relay_group = FanoutGroup(relay.address, self.scenario, stalled=0)
            self._stack.callback(self._relay_group.close)
            self._server_group = FanoutGroup(server.address, self.scenario, stalled=self.scenario.stalled)
            self._stack.callback(self._server_group.close)
        except BaseException:
            self._stack.close()
            raise
        self.progress(f"connected {self.scenario.describe()} to both targets")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()

    def warm_up(self) -> None:
        assert self._relay_group is not None and self._server_group is not None
        for _ in range(self.scenario.warmup):
            self._relay_group.burst()
            if not self._server_group.broken:
                result = self._server_group.burst()
                if result.timed_out:
                    self.progress("server stalled during warm-up")

    def calibration_burst(self) -> BurstResult:
        assert self._relay_group is not None
        result = self._relay_group.burst()
        if result.timed_out:
            raise GateError(
                f"the calibration relay did not deliver a burst within {self.scenario.burst_timeout}s "
                f"({result.incomplete} receivers incomplete): the machine is too overloaded to measure"
            )
        self._relay.append(result)
        return result

    def server_burst(self) -> BurstResult:
        """One measured server round: :meth:`server_transfer` + :meth:`server_finish`."""
        self.server_transfer()
        return self.server_finish()

    def server_transfer(self) -> None:
        """The timed part of a server round (what pytest-benchmark times)."""
        assert self._server_group is not None
        if self._server_group.broken:
            # Stalled for good: this round is at least the timeout, without waiting for it.
            timeout_us = int(self.scenario.burst_timeout * 1e6)
            self._censored = BurstResult(timeout_us, timeout_us, timeout_us, 0, self.scenario.clients)
        else:
            self._server_group.transfer()

    def server_finish(self) -> BurstResult:
        """Decode and record the last :meth:`server_transfer`."""
        assert self._server_group is not None
        if self._censored is not None:
            result, self._censored = self._censored, None
        else:
            result = self._server_group.finish()
        self._server.append(result)
        n = len(self._server)
        ratio = result.fanout_us / max(1, self._relay[-1].fanout_us) if self._relay else float("nan")
        stalled = f"  STALLED ({result.incomplete} receivers incomplete)" if result.timed_out else ""
        self.progress(
            f"round {n:2d}: server {result.fanout_us / 1000:8.2f} ms"
            + (f", relay {self._relay[-1].fanout_us / 1000:7.2f} ms, ratio {ratio:5.2f}" if self._relay else "")
            + stalled
        )
        return result

    def next_round(self) -> None:
        """Between two timed server transfers: finish the previous server
        round, then run a calibration round.  Use as pytest-benchmark's
        ``setup``, with :meth:`server_transfer` as the target."""
        if self.server_pending:
            self.server_finish()
        self.calibration_burst()

    @property
    def server_pending(self) -> bool:
        assert self._server_group is not None
        return self._censored is not None or self._server_group.pending

    def complete_rounds(self) -> None:
        """Finish a pending server round and run interleaved rounds until
        ``scenario.rounds`` are done (pytest-benchmark runs the target only
        once when benchmarks are disabled)."""
        if self.server_pending:
            self.server_finish()
        while len(self._relay) < self.scenario.rounds or len(self._server) < self.scenario.rounds:
            if len(self._relay) <= len(self._server):
                self.calibration_burst()
            else:
                self.server_burst()

    @property
    def rounds_done(self) -> int:
        return min(len(self._server), len(self._relay))

    def measurement(self) -> Measurement:
        if not self._server or not self._relay:
            raise GateError("no rounds were measured")
        return Measurement(
            scenario=self.scenario,
            server=_summarize("server", self._server),
            relay=_summarize("calibration relay", self._relay),
            seconds=time.monotonic() - self._started,
            unstamped_chunks=sum(g.unstamped_chunks for g in (self._server_group, self._relay_group) if g is not None),
        )


def fast_half_mean(values: Sequence[float]) -> float:
    """Mean of the faster half of ``values`` (the middle one included).

    On a shared machine noise only ever adds time: a neighbour preempts the
    target mid-burst, a cache is cold.  The faster rounds are the ones that
    measure the code rather than the neighbours, and averaging half of them
    keeps the estimate stable (on the 2-core machine under load it separated
    unchanged and 2x-slower servers better than the median, the lower
    quartile or the minimum did)."""
    if not values:
        raise GateError("no values")
    ordered = sorted(values)
    return float(statistics.fmean(ordered[: (len(ordered) + 1) // 2]))


def _summarize(label: str, results: Sequence[BurstResult]) -> TargetSummary:
    merged = LatencyHistogram()
    for result in results:
        merged.merge(result.histogram)
    return TargetSummary(
        label=label,
        fanout_us=tuple(r.fanout_us for r in results),
        p50_us=tuple(r.p50_us for r in results),
        p99_us=tuple(r.p99_us for r in results),
        timed_out=sum(1 for r in results if r.timed_out),
        incomplete_receivers=max((r.incomplete for r in results), default=0),
        latency=merged.summary(),
    )


def run_gate(scenario: Scenario, progress: Progress = _quiet) -> Measurement:
    """Start both targets, warm up, run ``rounds`` interleaved rounds."""
    with GateRun(scenario, progress) as run:
        run.warm_up()
        for _ in range(scenario.rounds):
            run.calibration_burst()
            run.server_burst()
        return run.measurement()


# --------------------------------------------------------------------------
# Baseline and verdict
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MetricBaseline:
    value: float
    tolerance: float

    @property
    def limit(self) -> float:
        return self.value * (1.0 + self.tolerance)


@dataclass(frozen=True, slots=True)
class Baseline:
    metrics: dict[str, MetricBaseline]
    scenario: dict[str, int]
    path: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict)


def load_baseline(path: Path = BASELINE_PATH) -> Baseline:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise GateError(f"no baseline at {path}; create it with `python -m bench.gate --write-baseline`") from exc
    except (OSError, ValueError) as exc:
        raise GateError(f"cannot read baseline {path}: {exc}") from exc
    try:
        if raw["schema"] != BASELINE_SCHEMA:
            raise GateError(f"baseline {path} has schema {raw['schema']}, expected {BASELINE_SCHEMA}")
        metrics = {
            name: MetricBaseline(float(entry["value"]), float(entry["tolerance"]))
            for name, entry in raw["metrics"].items()
        }
        scenario = {key: int(raw["scenario"][key]) for key in SCENARIO_KEYS}
    except (KeyError, TypeError, ValueError) as exc:
        raise GateError(f"baseline {path} is malformed ({exc!r}); regenerate it with `make bench-baseline`") from exc
    for name, metric in metrics.items():
        if metric.value <= 0 or metric.tolerance <= 0:
            raise GateError(f"baseline {path}: {name} needs a positive value and tolerance")
    return Baseline(metrics, scenario, str(path), raw)


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    #: One line per gated metric, failing or not.
    lines: tuple[str, ...]
    failures: tuple[str, ...]

    @property
    def message(self) -> str:
        head = "fan-out gate: PASS" if self.ok else "fan-out gate: REGRESSION"
        return "\n".join([head, *self.lines])


def compare(
    ratios: Mapping[str, float],
    baseline: Baseline,
    *,
    scenario: Mapping[str, int] | None = None,
    stalled_note: str | None = None,
) -> Verdict:
    """Check measured ratios against the baseline.  A ratio fails when it is
    above ``baseline * (1 + tolerance)``; ``stalled_note`` (the server did not
    deliver a burst at all) fails every metric, since the measured values are
    then only lower bounds."""
    if scenario is not None:
        for key in SCENARIO_KEYS:
            if scenario.get(key) != baseline.scenario.get(key):
                ours = ", ".join(f"{k}={scenario.get(k)}" for k in SCENARIO_KEYS)
                recorded = ", ".join(f"{k}={baseline.scenario.get(k)}" for k in SCENARIO_KEYS)
                raise GateError(
                    f"the measured scenario ({ours}) differs from the baseline's ({recorded}) "
                    f"in {baseline.path}; regenerate the baseline with `make bench-baseline`"
                )
    lines: list[str] = []
    failures: list[str] = []
    for name, metric in baseline.metrics.items():
        if name not in ratios:
            raise GateError(f"the measurement has no {name!r}, which the baseline {baseline.path} gates")
        measured = ratios[name]
        failed = measured > metric.limit or stalled_note is not None
        what = METRIC_DESCRIPTIONS.get(name, name)
        line = (
            f"{'FAIL' if failed else 'ok  '} {name} {'>=' if stalled_note else '='} {measured:.3f} "
            f"(baseline {metric.value:.3f}, tolerance +{metric.tolerance:.0%}, limit {metric.limit:.3f}"
            f"{f'; {measured / metric.value:.2f}x the baseline' if failed else ''}) -- {what}"
        )
        if stalled_note and failed:
            line += f"; {stalled_note}"
        lines.append(line)
        if failed:
            failures.append(name)
    lines.append(f"baseline: {baseline.path}")
    return Verdict(ok=not failures, lines=tuple(lines), failures=tuple(failures))


def judge(measurement: Measurement, baseline: Baseline) -> Verdict:
    """:func:`compare` for a :class:`Measurement`, with its context in the message."""
    stalled_note = None
    if measurement.stalled:
        stalled_note = (
            f"the server did not deliver a burst within {measurement.scenario.burst_timeout:g}s "
            f"({measurement.server.incomplete_receivers} of {measurement.scenario.clients} receivers incomplete)"
        )
    verdict = compare(measurement.ratios, baseline, scenario=measurement.scenario.key(), stalled_note=stalled_note)
    server, relay = measurement.server, measurement.relay
    at_least = ">= " if measurement.stalled else ""
    context = (
        f"measured: {measurement.scenario.describe()}, {len(server.fanout_us)} rounds; "
        f"fan-out server {at_least}{server.typical_fanout_us / 1000:.2f} ms "
        f"vs relay {relay.typical_fanout_us / 1000:.2f} ms; "
        f"p99 server {at_least}{server.typical_p99_us / 1000:.2f} ms vs relay {relay.typical_p99_us / 1000:.2f} ms "
        f"(means of the faster half of the rounds); arrival times: {measurement.arrival_clock}"
    )
    return replace(verdict, lines=(*verdict.lines, context))


def _ratios_text(measurement: Measurement) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in measurement.ratios.items())


def check(
    scenario: Scenario,
    baseline: Baseline,
    progress: Progress = _quiet,
    *,
    attempts: int = 2,
    first: Measurement | None = None,
) -> tuple[Verdict, list[Measurement]]:
    """Measure and judge.  A failure is confirmed by measuring again, up to
    ``attempts`` measurements in all: the gate fails only if every one of
    them fails, so one unlucky run on a busy machine does not fail CI, while
    a real slowdown fails every time.  A stall is not re-measured (it cannot
    be noise).  ``first``: an attempt already measured (by the pytest test)."""
    measurements: list[Measurement] = []
    verdict: Verdict | None = None
    for attempt in range(1, max(1, attempts) + 1):
        if attempt == 1 and first is not None:
            measurement = first
        else:
            if verdict is not None:
                progress(f"attempt {attempt - 1} failed ({', '.join(verdict.failures)}); measuring again to confirm")
            measurement = run_gate(scenario, progress)
        measurements.append(measurement)
        verdict = judge(measurement, baseline)
        if verdict.ok or measurement.stalled:
            break
    assert verdict is not None
    if len(measurements) > 1:
        history = tuple(
            f"attempt {i}: {_ratios_text(m)}{' (failed)' if i < len(measurements) or not verdict.ok else ' (passed)'}"
            for i, m in enumerate(measurements, 1)
        )
        summary = (
            "an earlier attempt failed but the last one passed: treated as noise"
            if verdict.ok
            else f"all {len(measurements)} attempts failed"
        )
        verdict = replace(verdict, lines=(*verdict.lines, *history, summary))
    return verdict, measurements


# --------------------------------------------------------------------------
# Writing the baseline
# --------------------------------------------------------------------------


def machine_description() -> dict[str, Any]:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg_at_write": load,
    }


def build_baseline(
    measurements: Sequence[Measurement],
    tolerances: Mapping[str, float],
    command: str,
    note: str = "",
) -> dict[str, Any]:
    """The baseline document: for each gated metric the median over runs."""
    if not measurements:
        raise GateError("no measurements to build a baseline from")
    if any(m.stalled for m in measurements):
        raise GateError("the server stalled during a baseline run; refusing to record it as the baseline")
    scenario = measurements[0].scenario
    metrics: dict[str, dict[str, float]] = {}
    for name in METRIC_DESCRIPTIONS:
        values = [m.ratios[name] for m in measurements]
        metrics[name] = {"value": round(statistics.median(values), 4), "tolerance": tolerances[name]}
    return {
        "schema": BASELINE_SCHEMA,
        "about": (
            "Fan-out regression gate (bench/gate.py, tests/perf/test_perf_fanout.py). Each metric is a ratio "
            "server / calibration relay measured in the same run; the gate fails when a measured ratio exceeds "
            "value * (1 + tolerance). Regenerate with `make bench-baseline`."
        ),
        "metrics": metrics,
        "descriptions": METRIC_DESCRIPTIONS,
        "scenario": {**scenario.key(), "rounds": scenario.rounds, "warmup": scenario.warmup, "fanout": scenario.fanout},
        "runs": [
            {
                **{k: round(v, 4) for k, v in m.ratios.items()},
                "server_fanout_ms": round(m.server.typical_fanout_us / 1000, 3),
                "relay_fanout_ms": round(m.relay.typical_fanout_us / 1000, 3),
            }
            for m in measurements
        ],
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_description(),
        "command": command,
        "note": note,
    }


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.gate",
        description=(
            "Fan-out regression gate: measure the chat server's broadcast fan-out against a calibration relay "
            "in the same run, and compare the ratio with the committed baseline (exit 1 on regression)."
        ),
        epilog=(
            "Examples:  python -m bench.gate            (check against bench/gate/baseline.json)\n"
            "           python -m bench.gate --write-baseline --runs 5\n"
            "           python -m bench.gate --fanout direct --stalled 1   (a regression the gate must catch)"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d = Scenario()
    parser.add_argument("--baseline", type=Path, default=BASELINE_PATH, help="baseline JSON (default: %(default)s)")
    parser.add_argument(
        "--write-baseline", action="store_true", help="measure --runs times and write the baseline instead of checking"
    )
    parser.add_argument(
        "--runs", type=int, default=7, help="runs for --write-baseline; the median is recorded (default: %(default)s)"
    )
    parser.add_argument(
        "--tolerance",
        action="append",
        default=[],
        metavar="METRIC=FRACTION",
        help="with --write-baseline: tolerance for a metric, e.g. fanout_ratio=0.5 "
        "(default: keep the existing baseline's, else "
        + ", ".join(f"{k}={v}" for k, v in DEFAULT_TOLERANCES.items())
        + ")",
    )
    parser.add_argument("--note", default="", help="with --write-baseline: free text stored in the baseline")
    parser.add_argument("--fanout", choices=("queued", "direct"), default=d.fanout, help="server --fanout strategy")
    parser.add_argument("--stalled", type=int, default=d.stalled, help="registered clients that never read")
    parser.add_argument(
        "--server-command",
        metavar="CMD",
        help="start the server under test with this command instead of `python -m server` "
        "(it must log 'listening on HOST:PORT' on stderr); --fanout is then ignored",
    )
    parser.add_argument("--clients", type=int, default=d.clients, help="receivers (default: %(default)s)")
    parser.add_argument("--lines", type=int, default=d.lines, help="lines per burst (default: %(default)s)")
    parser.add_argument("--payload", type=int, default=d.payload, help="payload characters per line")
    parser.add_argument(
        "--rounds", type=int, default=d.rounds, help="measured rounds per target (default: %(default)s)"
    )
    parser.add_argument("--warmup", type=int, default=d.warmup, help="discarded rounds per target")
    parser.add_argument(
        "--burst-timeout", type=float, default=d.burst_timeout, help="seconds before a burst is stalled"
    )
    parser.add_argument(
        "--attempts",
        type=int,
        default=2,
        help="measurements before a failure counts: the gate fails only if all fail (default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print the full measurement as JSON on stdout")
    parser.add_argument("-q", "--quiet", action="store_true", help="no per-round progress on stderr")
    relay = parser.add_argument_group("calibration relay (internal)")
    relay.add_argument("--relay", action="store_true", help="only run the calibration relay until killed")
    relay.add_argument("--host", default="127.0.0.1", help="relay listen address")
    relay.add_argument("--port", type=int, default=0, help="relay port; 0 picks one (logged on stderr)")
    return parser


def _parse_tolerances(items: Sequence[str], existing: Mapping[str, float]) -> dict[str, float]:
    tolerances = {**DEFAULT_TOLERANCES, **existing}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in METRIC_DESCRIPTIONS:
            raise GateError(f"--tolerance wants METRIC=FRACTION with METRIC in {', '.join(METRIC_DESCRIPTIONS)}")
        try:
            tolerances[name] = float(value)
        except ValueError as exc:
            raise GateError(f"--tolerance {item}: {value!r} is not a number") from exc
        if tolerances[name] <= 0:
            raise GateError(f"--tolerance {item}: must be positive")
    return tolerances


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.relay:
        return run_relay(args.host, args.port)
    try:
        scenario = Scenario(
            clients=args.clients,
            lines=args.lines,
            payload=args.payload,
            rounds=args.rounds,
            warmup=args.warmup,
            burst_timeout=args.burst_timeout,
            fanout=args.fanout,
            stalled=args.stalled,
            server_command=tuple(shlex.split(args.server_command)) if args.server_command else None,
        )
    except ValueError as exc:
        parser.error(str(exc))

    def progress(message: str) -> None:
        if not args.quiet:
            print(f"[gate] {message}", file=sys.stderr, flush=True)

    try:
        if args.write_baseline:
            return _write_baseline(args, scenario, progress, sys.argv[1:] if argv is None else argv)
        baseline = load_baseline(args.baseline)
        verdict, measurements = check(scenario, baseline, progress, attempts=args.attempts)
    except GateError as exc:
        print(f"bench.gate: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        document = {
            "ok": verdict.ok,
            "verdict": verdict.message,
            "attempts": [m.to_json() for m in measurements],
        }
        print(json.dumps(document, indent=2))
    else:
        print(verdict.message)
    return 0 if verdict.ok else 1


def _write_baseline(args: argparse.Namespace, scenario: Scenario, progress: Progress, argv: list[str]) -> int:
    if args.runs < 1:
        raise GateError("--runs must be at least 1")
    existing: dict[str, float] = {}
    if args.baseline.exists():
        try:
            existing = {k: m.tolerance for k, m in load_baseline(args.baseline).metrics.items()}
        except GateError as exc:
            progress(f"ignoring the existing baseline's tolerances: {exc}")
    tolerances = _parse_tolerances(args.tolerance, existing)
    measurements: list[Measurement] = []
    for i in range(args.runs):
        progress(f"run {i + 1}/{args.runs}")
        m = run_gate(scenario, progress)
        progress(
            f"run {i + 1}/{args.runs}: "
            + ", ".join(f"{k} {v:.3f}" for k, v in m.ratios.items())
            + f" ({m.seconds:.1f}s)"
        )
        measurements.append(m)
    command = "python -m bench.gate " + shlex.join(argv)
    document = build_baseline(measurements, tolerances, command, args.note)
    args.baseline.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(
        f"wrote {args.baseline}: "
        + ", ".join(f"{k} {v['value']} (+{v['tolerance']:.0%})" for k, v in document["metrics"].items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
