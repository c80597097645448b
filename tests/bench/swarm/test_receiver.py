"""The receiver: reads through the one receive path into the recorder, hears
the server's reasons, and counts a connection's end."""

from __future__ import annotations

import socket

from bench.measure import probe
from bench.swarm.plan import ClientSpec
from bench.wire.lines import BlockLineDecoder
from server import protocol
from tests.bench.swarm.parts import Parts, worker_plan

SENDER = ClientSpec(0, "alice", receives=False, slot=0)
OTHER = ClientSpec(2, "bob", receives=False, slot=1, node=1)
RECEIVER = ClientSpec(1, "carol", receives=True)


def _line(name: str, sender: int, seq: int, intended: int = 10**12) -> bytes:
    return protocol.encode_message(name, probe.encode_probe(sender, seq, intended, "x" * 8))


def test_deliveries_are_recorded_and_a_notice_that_ends_the_connection_is_heard() -> None:
    parts = Parts(worker_plan([SENDER, RECEIVER]))
    ours, peer = socket.socketpair()
    try:
        conn = parts.ready_conn(RECEIVER, ours)
        peer.sendall(b"".join(_line("alice", 0, seq) for seq in range(5)) + protocol.encode_joined("dave"))
        parts.receiver.readable(conn)
        rec = parts.receiver.recorder
        assert (rec.delivered_all, rec.delivered_measured, rec.lines) == (5, 5, 6)
        assert conn.tracker is not None and conn.tracker.next_seq(0) == 5
        assert conn.end_reason is None  # a join notice is not a reason
        # A line split across reads is held until its end arrives.
        whole = _line("alice", 0, 5)
        peer.sendall(whole[:20])
        parts.receiver.readable(conn)
        assert rec.delivered_all == 5
        peer.sendall(whole[20:] + protocol.encode_disconnect("send queue exceeded"))
        parts.receiver.readable(conn)
        assert rec.delivered_all == 6
        assert conn.end_reason == "disconnected: send queue exceeded"
        # The server closes: the disconnect is counted under the server's reason.
        peer.close()
        parts.receiver.readable(conn)
        assert dict(parts.sockets.disconnects) == {"disconnected: send queue exceeded": 1}
        assert parts.receiver.bytes_in > 0 and parts.receiver.last_rx_ns > 0
    finally:
        parts.close()
        peer.close()


def test_a_line_past_the_limit_ends_the_connection() -> None:
    parts = Parts(worker_plan([SENDER, RECEIVER]))
    ours, peer = socket.socketpair()
    try:
        conn = parts.ready_conn(RECEIVER, ours)
        conn.decoder = BlockLineDecoder(64)
        peer.sendall(b"x" * 200 + b"\n")
        parts.receiver.readable(conn)
        assert dict(parts.sockets.disconnects) == {"line too long": 1}
    finally:
        parts.close()
        peer.close()


def test_each_delivery_is_measured_under_its_label_from_the_plan() -> None:
    """Two nodes: alice on the receiver's node (path=same), bob on the other (path=cross)."""
    parts = Parts(worker_plan([SENDER, OTHER, RECEIVER], nodes=2))
    ours, peer = socket.socketpair()
    try:
        conn = parts.ready_conn(RECEIVER, ours)
        peer.sendall(b"".join(_line("alice", 0, s) for s in range(3)) + b"".join(_line("bob", 2, s) for s in range(4)))
        parts.receiver.readable(conn)
        labelled = parts.receiver.recorder.labelled
        counts = {key: h.count for key, h in zip(labelled.keys, labelled.hists, strict=True)}
        assert counts == {"path=same": 3, "path=cross": 4}
    finally:
        parts.close()
        peer.close()
