"""The sender: the open-loop schedule, the intended time in every probe, and
what counts as sent (only what the kernel took whole)."""

from __future__ import annotations

import socket

from bench.measure import probe
from bench.swarm.plan import ClientSpec, Schedule
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
