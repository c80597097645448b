"""The sender: the open-loop schedule, the intended time in every probe, and
what counts as sent (only what the kernel took whole)."""

from __future__ import annotations

import socket

import numpy as np

from bench import wire
from bench.measure import probe
from bench.swarm.plan import ClientSpec, Schedule
from bench.swarm.sender import Sender
from bench.workload import Client, Plan, Room, Stream
from bench.workload.traffic import Traffic
from server import protocol
from tests.bench.swarm.parts import Parts, worker_plan

ALICE = ClientSpec(0, "alice", receives=True, slot=0)
BOB = ClientSpec(1, "bob", receives=True, slot=1)


def _probes(data: bytes) -> list[probe.Probe]:
    out = []
    for line in data.split(b"\n")[:-1]:
        command = protocol.parse_client_line(line.decode())
        assert isinstance(command, protocol.Say)
        out.append(probe.parse_probe(command.text))
    return out


def _drain(sock: socket.socket) -> bytes:
    """What ``sock`` has received so far (without waiting for more)."""
    sock.setblocking(False)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except BlockingIOError:
        pass
    return data


def test_due_messages_carry_their_intended_time_and_per_stream_sequence() -> None:
    parts = Parts(worker_plan([ALICE, BOB]))
    a_ours, a_peer = socket.socketpair()
    b_ours, b_peer = socket.socketpair()
    try:
        alice, bob = parts.ready_conn(ALICE, a_ours), parts.ready_conn(BOB, b_ours)
        schedule = Schedule(t0_ns=10**12, rate=1000.0, total=6, senders=2, warmup=2, audience={0: 1, 1: 1})
        parts.sender.start(schedule, [alice, bob])
        assert parts.sender.due_ns() == 10**12
        # Late by 10 ms: everything due is sent at once, each stamped with its
        # own intended time (open loop), and the lag is recorded.
        parts.sender.emit_due(10**12 + 10_000_000)
        got_a = _probes(a_peer.recv(65536))
        got_b = _probes(b_peer.recv(65536))
        assert [(p.sender, p.seq, p.intended_ns) for p in got_a] == [(0, s, 10**12 + 2 * s * 10**6) for s in range(3)]
        assert [(p.sender, p.seq, p.intended_ns) for p in got_b] == [
            (1, s, 10**12 + (2 * s + 1) * 10**6) for s in range(3)
        ]
        assert all(len(p.payload) == 16 for p in got_a + got_b)
        # Handed to the kernel whole: counted; the warm-up (messages 0 and 1) is not measured.
        assert (alice.sent, alice.measured_sent, bob.sent, bob.measured_sent) == (3, 2, 3, 2)
        assert parts.sender.send_lag.count == 6 and parts.sender.send_lag.max >= 5000
        assert parts.sender.due_ns() is None
        sent = parts.sender.stop(parts.registrar.sender_conns)
        assert sent.sent == {0: 3, 1: 3} and sent.measured == {0: 2, 1: 2} and sent.unsent_bytes == 0
    finally:
        parts.close()
        a_peer.close()
        b_peer.close()


def test_a_message_counts_as_sent_only_once_the_kernel_took_all_of_it() -> None:
    parts = Parts(worker_plan([ALICE, BOB]))
    ours, peer = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        conn = parts.ready_conn(ALICE, ours)
        schedule = Schedule(t0_ns=1, rate=0, total=2000, senders=1, warmup=0, audience={0: 1})
        parts.sender.start(schedule, [conn])
        parts.sender.emit_due(2)  # a burst: far more than the socket buffers hold
        assert conn.outbuf and conn.writing  # the rest waits for writability
        before = conn.sent
        assert 0 < before < 2000
        received = b""
        while conn.outbuf:
            received += peer.recv(65536)
            parts.sender.writable(conn)
        assert conn.sent == 2000 > before
        assert not conn.writing
        # Every message arrived whole, in order.
        assert [p.seq for p in _probes(received + _drain(peer))] == list(range(2000))
        # A protocol reply queued behind messages is written but never counted as a message.
        parts.sender.send_control(conn, b"PONG x\n")
        assert conn.sent == 2000 and not conn.out_lens
        assert _drain(peer) == b"PONG x\n"
    finally:
        parts.close()
        peer.close()


def test_a_client_in_two_rooms_sends_two_streams_each_with_its_own_sequence_and_counts() -> None:
    """A drawn timetable (which stream, when, how big) and a sender of two
    streams: each room gets ``/say #ROOM``, each stream counts its own."""
    bob = ClientSpec(1, "bob", receives=True)
    alice = ClientSpec(0, "alice", receives=True, slot=0, rooms=("r1", "r2"))
    plan = Plan(
        clients={0: Client(0, "alice", True), 1: Client(1, "bob", True)},
        rooms=(Room("r1", (0, 1)), Room("r2", (0, 1))),
        streams={10: Stream(10, 0, 0, 0), 11: Stream(11, 0, 1, 1)},
    )
    slot_of = np.array([1, 0, 1, 1, 0], dtype=np.int32)
    offsets = np.array([0, 5, 9, 30, 31], dtype=np.int64) * 1000
    sizes = np.array([3, 5, 7, 9, 11], dtype=np.int32)
    schedule = Schedule(10**12, 100.0, 5, 2, 1, {10: 1, 11: 1}, Traffic(slot_of, offsets, sizes))
    parts = Parts(worker_plan([alice, bob]))
    sender = Sender(16, wire.get("chat", rooms=True), parts.sockets, plan)
    ours, peer = socket.socketpair()
    try:
        conn = parts.ready_conn(alice, ours)
        sender.start(schedule, [conn])
        assert sender.due_ns() == 10**12 and sender.pending() == 5
        sender.emit_due(10**12 + 10_000)  # the first three are due
        assert sender.pending() == 2
        sender.emit_due(10**12 + 10**9)
        said = [protocol.parse_client_line(line.decode()) for line in _drain(peer).split(b"\n")[:-1]]
        assert all(isinstance(c, protocol.SayTo) for c in said)
        got = [(c.room, probe.parse_probe(c.text)) for c in said if isinstance(c, protocol.SayTo)]
        assert [(room, p.sender, p.seq, p.intended_ns - 10**12, len(p.payload)) for room, p in got] == [
            ("#r2", 11, 0, 0, 3),
            ("#r1", 10, 0, 5000, 5),
            ("#r2", 11, 1, 9000, 7),
            ("#r2", 11, 2, 30000, 9),
            ("#r1", 10, 1, 31000, 11),
        ]
        sent = sender.stop([conn])
        assert sent.sent == {10: 2, 11: 3} and sent.measured == {10: 2, 11: 2}  # message 0 is the warm-up
        assert conn.sent == 5 and sender.pending() == 0
    finally:
        parts.close()
        peer.close()
