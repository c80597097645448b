"""The fault-injecting relay: a chat relay whose faults and delays are known in advance.

``chat-bench selftest`` (:mod:`bench.studies.selftest`) runs the harness
against it and checks that the harness reports exactly what it did.  It speaks
the line protocol like the calibration relay (:mod:`bench.targets.relay`):
prompt, welcome, join notices, ``NAME: TEXT`` lines.  By a seeded schedule
(:mod:`bench.targets.faultplan`) it

* holds every probe until ``intended send time + delay`` (constant, seeded
  uniform, and a stall: every ``--stall-every-ms`` it holds all deliveries
  ``--stall-ms``, the coordinated-omission case);
* drops, duplicates, swaps with the next one, or corrupts one payload byte
  of chosen messages to chosen receivers;
* disconnects a chosen receiver after a number of deliveries, and stops
  reading from a chosen sender for a while.

It writes the schedule to ``--schedule FILE`` at start, and at exit (SIGTERM)
the outcome too: which faults it applied, what the disconnected receiver got,
and HDR histograms of each delivery's scheduled and observed latency.

With ``--tls-cert FILE --tls-key FILE`` it speaks TLS to every client
(:class:`server.tls.TlsSocket`, as our server does), so the selftest can
show that kernel receive stamps still end a delivery's latency where the
ciphertext arrived: its delays are then checked over TLS (``selftest --tls``).
Its own delivery time is measured after the encrypting send returns.

Run on its own: ``python -m bench.targets.faultrelay --schedule s.json
--drop 2 --senders 2 --clients 4 --seq-range 5,50`` (it logs ``listening on
HOST:PORT``); as a swarm target: ``--target faultrelay`` with the relay's
options after ``--server-args``.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import logging
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import NoReturn, cast

from bench.measure import probe
from bench.measure.stats import LatencyHistogram
from bench.results.store import write_json
from bench.targets import certs
from bench.targets.base import PLAIN, CommandTarget, Security
from bench.targets.faultplan import (
    ID_MODES,
    SCHEDULE_KIND,
    DelayModel,
    Fault,
    FaultOptions,
    FaultRecord,
    LatencyRecord,
    ScheduleFile,
    Timetable,
    client_id,
    options_dict,
    plan_faults,
)
from bench.targets.relay import RECV_BYTES, accept_forever, read_name, send_welcome
from server import protocol
from server.tls import PLAINTEXT_CHAT_ANSWER, TlsSocket, server_context

log = logging.getLogger(__name__)

#: Pending connections the listener queues: the swarm connects up to ~1,000 at once.
LISTEN_BACKLOG = 1024
#: Longest the delivery thread sleeps with nothing due (seconds): it is woken
#: when something is queued, this only bounds a missed wake-up.
IDLE_WAIT_S = 0.05
#: A scheduled latency above this counts in ``above_100ms`` (the stall's share).
SLOW_NS = 100_000_000

#: What the delivery thread queues: (due_ns, order, sender socket or None, line,
#: sender id, seq, intended_ns); sender id -1 for a notice.
Item = tuple[int, int, "socket.socket | None", bytes, int, int, int]


@dataclass(eq=False)
class Member:
    sock: socket.socket
    name: str
    cid: int | None
    delivered: dict[int, int] = field(default_factory=dict)  #: probes delivered per sender
    cut: bool = False


class Outcome:
    """What the relay did, for the schedule file: applied faults and latencies."""

    def __init__(self, faults: list[Fault]) -> None:
        self.faults = faults
        self.applied: set[Fault] = set()
        self.scheduled = LatencyHistogram()
        self.observed = LatencyHistogram()
        self.passthrough = LatencyHistogram()
        self.above_100ms = 0
        self.disconnect_delivered: dict[int, int] | None = None
        self.timetable: Timetable | None = None
        self.receiver_names: dict[int, str] = {}
        self.sender_ids: dict[int, int] = {}

    def record(self, sent_ns: int, timings: list[tuple[int, int]]) -> None:
        """Probes handed to the kernel at ``sent_ns``: their (intended, due)."""
        self.scheduled.record_many([(due - intended) // 1000 for intended, due in timings])
        self.observed.record_many([(sent_ns - intended) // 1000 for intended, _ in timings])
        self.passthrough.record_many([max(0, sent_ns - due) // 1000 for _, due in timings])
        self.above_100ms += sum(1 for intended, due in timings if due - intended > SLOW_NS)

    def document(self, opts: FaultOptions, finished: bool) -> ScheduleFile:
        faults = [
            FaultRecord(kind=f.kind, sender=f.sender, seq=f.seq, receiver=f.receiver, applied=f in self.applied)
            for f in self.faults
        ]
        cut = self.disconnect_delivered
        latency = LatencyRecord(
            scheduled=self.scheduled.encode(),
            observed=self.observed.encode(),
            passthrough=self.passthrough.encode(),
            deliveries=self.scheduled.count,
            above_100ms=self.above_100ms,
        )
        return ScheduleFile(
            kind=SCHEDULE_KIND,
            options=options_dict(opts),
            faults=faults,
            disconnect_delivered={str(k): v for k, v in cut.items()} if cut is not None else None,
            receiver_names={str(k): v for k, v in self.receiver_names.items()},
            sender_ids={str(k): v for k, v in self.sender_ids.items()},
            latency=latency if finished else None,
            timetable=self.timetable.record() if self.timetable is not None else None,
            finished=finished,
        )


def corrupt_text(text: str) -> str:
    """``text`` (a probe) with the first byte of its payload changed to another letter."""
    pos = len(" ".join(text.split(" ", 4)[:4])) + 1
    old = text[pos]
    return text[:pos] + ("b" if old == "a" else "a") + text[pos + 1 :]


class FaultRelay:
    """The relay: one reader thread per connection, one delivery thread that
    sends everything at its due time (so every byte a client gets comes from
    that thread, in one order)."""

    def __init__(self, listener: socket.socket, opts: FaultOptions, tls: ssl.SSLContext | None = None) -> None:
        self._listener = listener
        self.opts = opts
        #: TLS to every client (None: plaintext)
        self.tls = tls
        if opts.ids not in ID_MODES:
            raise ValueError(f"--ids {opts.ids!r}: choose from {', '.join(ID_MODES)}")
        self.delays = DelayModel(opts)
        faults = plan_faults(opts)
        self.outcome = Outcome(faults)
        if opts.rate > 0:
            self.outcome.timetable = Timetable(opts.senders, opts.rate)
        self._faults: dict[tuple[int, int], dict[int, Fault]] = {}
        for f in faults:
            self._faults.setdefault((f.sender, f.seq), {})[f.receiver] = f
        self._held: dict[tuple[int, int], tuple[int, bytes, Fault]] = {}  # (receiver, sender) -> (release seq, line)
        self._cond = threading.Condition()
        self._heap: list[Item] = []
        self._order = itertools.count()
        self._members: tuple[Member, ...] = ()

    def final_document(self) -> ScheduleFile:
        with self._cond:
            return self.outcome.document(self.opts, finished=True)

    def serve_forever(self) -> None:
        threading.Thread(target=self._deliver_forever, name="deliver", daemon=True).start()
        accept_forever(self._listener, self._session)

    # -- reading -----------------------------------------------------------------

    def _session(self, sock: socket.socket) -> None:
        if self.tls is not None:  # the handshake runs on the first recv, in this thread
            peer = f"client fd {sock.fileno()}"
            sock = cast(socket.socket, TlsSocket(sock, self.tls, peer, plaintext_answer=PLAINTEXT_CHAT_ANSWER))
        try:
            if (registered := read_name(sock)) is None:
                return
            name, lines, decoder = registered
            with self._cond:
                member = Member(sock, name, self._receiver_index(name))
                send_welcome(sock, name, (m.name for m in self._members))
                self._members = (*self._members, member)
                self._queue(time.monotonic_ns(), None, protocol.encode_joined(name), -1, 0, 0)
            self._read(sock, member, decoder, lines)
        except OSError:
            pass
        finally:
            with self._cond:
                self._members = tuple(m for m in self._members if m.sock is not sock)
            sock.close()

    def _read(self, sock: socket.socket, member: Member, decoder: protocol.LineDecoder, lines: list[bytes]) -> None:
        opts = self.opts
        pausing = opts.pause_sender is not None and member.cid == opts.pause_sender and opts.pause_ms > 0
        first_probe_ns = 0
        while True:
            for line in lines:
                intended = self._relay_line(sock, member, line)
                first_probe_ns = first_probe_ns or intended
            if pausing and first_probe_ns and time.monotonic_ns() >= first_probe_ns + opts.pause_at_ms * 1e6:
                pausing = False
                log.info("not reading from sender %s for %.0f ms", member.cid, opts.pause_ms)
                time.sleep(opts.pause_ms / 1000)
            data = sock.recv(RECV_BYTES)
            if not data:
                return
            lines = decoder.feed(data)

    def _relay_line(self, sock: socket.socket, member: Member, line: bytes) -> int:
        """Queue one chat line; returns its intended send time if it is a probe."""
        text = protocol.decode_text(line)
        data = protocol.encode_message(member.name, text)
        try:
            p = probe.parse_probe(text)
        except probe.CorruptProbe:
            with self._cond:
                self._queue(time.monotonic_ns(), sock, data, -1, 0, 0)
            return 0
        with self._cond:
            if self.outcome.timetable is not None:
                self.outcome.timetable.check(p.sender, p.seq, p.intended_ns)
            sender = self._sender_index(p.sender, member)
            due = self.delays.due_ns(sender, p.seq, p.intended_ns)
            self._queue(due, sock, data, sender, p.seq, p.intended_ns)
        return p.intended_ns

    def _receiver_index(self, name: str) -> int | None:
        """Under the lock: the receiver id faults are planned for (see ``FaultOptions.ids``)."""
        if self.opts.ids != "arrival":
            return client_id(name)
        index = len(self.outcome.receiver_names)
        self.outcome.receiver_names[index] = name
        return index

    def _sender_index(self, sender: int, member: Member) -> int:
        """Under the lock: the sender id faults are planned for; with
        ``--ids arrival`` the receiver index of the connection it came from
        (so a fault is never planned on a sender's own messages)."""
        if self.opts.ids != "arrival" or member.cid is None:
            return sender
        self.outcome.sender_ids.setdefault(member.cid, sender)
        return member.cid

    def _queue(self, due: int, sock: socket.socket | None, data: bytes, sender: int, seq: int, intended: int) -> None:
        """Under the lock: queue one line and wake the delivery thread."""
        heapq.heappush(self._heap, (due, next(self._order), sock, data, sender, seq, intended))
        self._cond.notify()

    # -- delivering --------------------------------------------------------------

    def _deliver_forever(self) -> None:
        heap = self._heap
        while True:
            with self._cond:
                now = time.monotonic_ns()
                while not heap or heap[0][0] > now:
                    wait = (heap[0][0] - now) / 1e9 if heap else IDLE_WAIT_S
                    self._cond.wait(min(wait, IDLE_WAIT_S))
                    now = time.monotonic_ns()
                batch = []
                while heap and heap[0][0] <= now:
                    batch.append(heapq.heappop(heap))
                members = self._members
            self._send_batch(batch, members)

    def _send_batch(self, batch: list[Item], members: tuple[Member, ...]) -> None:
        for m in members:
            out = bytearray()
            timings: list[tuple[int, int]] = []
            for due, _, sock, data, sender, seq, intended in batch:
                if sock is m.sock or m.cut:
                    continue
                if sender < 0:
                    out += data
                    continue
                n = self._lines_for(m, sender, seq, data, out)
                timings.extend([(intended, due)] * n)
                if n:
                    self._count(m, sender)
            if not out:
                continue
            try:
                m.sock.sendall(out)
            except OSError:
                continue
            sent_ns = time.monotonic_ns()  # before the lock: waiting for it is not the relay's delivery time
            with self._cond:
                self.outcome.record(sent_ns, timings)
            if m.cut:
                self._cut(m)

    def _lines_for(self, m: Member, sender: int, seq: int, data: bytes, out: bytearray) -> int:
        """Append what receiver ``m`` gets of probe (sender, seq): the line,
        or its fault; returns the probe lines appended."""
        held = self._held.get((m.cid, sender)) if m.cid is not None else None
        fault = self._faults.get((sender, seq), {}).get(m.cid) if m.cid is not None else None
        n = 1
        if fault is None:
            out += data
        elif fault.kind == "drop":
            n = 0
        elif fault.kind == "duplicate":
            out += data + data
            n = 2
        elif fault.kind == "corrupt":
            name, text = data[:-1].decode("utf-8").split(": ", 1)
            out += protocol.encode_message(name, corrupt_text(text))
        else:  # swap: held back until seq + 1 has gone out
            assert m.cid is not None
            self._held[m.cid, sender] = (seq + 1, data, fault)
            return 0
        if fault is not None:
            self.outcome.applied.add(fault)
        if held is not None and held[0] == seq:
            assert m.cid is not None
            del self._held[m.cid, sender]
            out += held[1]
            self.outcome.applied.add(held[2])
            n += 1
        return n

    def _count(self, m: Member, sender: int) -> None:
        m.delivered[sender] = m.delivered.get(sender, 0) + 1
        opts = self.opts
        if m.cid is not None and m.cid == opts.disconnect and sum(m.delivered.values()) >= opts.disconnect_after:
            m.cut = True

    def _cut(self, m: Member) -> None:
        """Disconnect ``m``: no more deliveries, FIN after what it already has;
        its reader thread reads on until the client closes."""
        log.info("disconnecting receiver %s after %d probes", m.cid, sum(m.delivered.values()))
        with self._cond:
            self.outcome.disconnect_delivered = dict(m.delivered)
            self._members = tuple(x for x in self._members if x is not m)
        try:
            m.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _terminate(signum: int, frame: object) -> NoReturn:
    raise SystemExit(0)


def run_relay(host: str, port: int, opts: FaultOptions, schedule: str, tls_files: tuple[str, str] | None = None) -> int:
    """Serve until SIGTERM (over TLS with ``tls_files``: certificate, key);
    writes ``schedule`` at start and at exit."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        tls = server_context(*tls_files) if tls_files is not None else None
    except (OSError, ssl.SSLError) as exc:
        log.error("cannot load the TLS certificate and key: %s", exc)
        return 2
    try:
        relay_listener = socket.create_server((host, port), backlog=LISTEN_BACKLOG)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", host, port, exc.strerror or exc)
        return 2
    try:
        relay = FaultRelay(relay_listener, opts, tls)
    except ValueError as exc:
        log.error("bad fault options: %s", exc)
        return 2
    write_json(schedule, relay.outcome.document(opts, finished=False))
    signal.signal(signal.SIGTERM, _terminate)
    bound_host, bound_port = relay_listener.getsockname()[:2]
    log.info("listening on %s:%d", bound_host, bound_port)
    try:
        relay.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        relay_listener.close()
        write_json(schedule, relay.final_document())
    return 0


# -- the command line: one option per FaultOptions field -------------------------


def _pair(text: str) -> tuple[float, float]:
    lo, _, hi = text.partition(",")
    return float(lo), float(hi)


def option_argv(opts: FaultOptions, schedule: str) -> list[str]:
    """The relay's options for ``opts`` (what ``--server-args`` passes)."""
    argv = ["--schedule", schedule]
    default = FaultOptions()
    for f in fields(FaultOptions):
        value = getattr(opts, f.name)
        if value == getattr(default, f.name) or value is None:
            continue
        text = ",".join(str(v) for v in value) if isinstance(value, tuple) else str(value)
        argv += ["--" + f.name.replace("_", "-"), text]
    return argv


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.targets.faultrelay",
        description="A chat relay that injects known faults and delays (the selftest's target; serves until SIGTERM).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="listen address")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks one (logged on stderr)")
    parser.add_argument("--schedule", required=True, help="JSON file the plan and, at exit, the outcome go to")
    parser.add_argument("--tls-cert", help="speak TLS to every client with this certificate chain (PEM)")
    parser.add_argument("--tls-key", help="... and this key (PEM)")
    helps = {
        "seed": "seed of the fault choice and the uniform delays",
        "senders": "sender ids 0..N-1 faults may hit",
        "clients": "receiver ids 0..N-1 faults may hit",
        "seq_lo": "faults go on sequence numbers >= this ...",
        "seq_hi": "... and < this",
        "uniform_ms": "LO,HI: add a seeded uniform delay in [LO, HI] ms",
        "disconnect_after": "disconnect --disconnect after this many probes delivered to it",
        "ids": "name: ids from the names and probes (the swarm); arrival: by order of arrival (Locust users)",
    }
    for f in fields(FaultOptions):
        kind = _pair if f.name == "uniform_ms" else type(f.default) if isinstance(f.default, float | str) else int
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            type=kind,
            default=f.default,
            help=helps.get(f.name, f.name.replace("_", " ")),
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    opts = FaultOptions(**{f.name: getattr(args, f.name) for f in fields(FaultOptions)})
    tls_files = (args.tls_cert, args.tls_key or args.tls_cert) if args.tls_cert else None
    return run_relay(args.host, args.port, opts, args.schedule, tls_files)


class FaultRelayTarget(CommandTarget):
    """The relay as a swarm target (``--target faultrelay``); its options are the server args."""

    kind = "faultrelay"

    def __init__(self, server_args: Sequence[str], security: Security = PLAIN) -> None:
        tls: list[str] = []
        if security.tls:
            cert = certs.issue("faultrelay")
            tls = ["--tls-cert", cert.cert_file, "--tls-key", cert.key_file]
        super().__init__([sys.executable, "-m", "bench.targets.faultrelay", *tls, *server_args], "fault relay")
        self.security = security

    def refuses_rooms(self, rooms: int, per_client: int) -> str | None:
        return "the fault relay has one room: it relays every line to every client"


if __name__ == "__main__":
    sys.exit(main())
