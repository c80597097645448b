"""The panel (bench.swarm.panel): the steady receivers of a churn run, read
as soon as they have bytes, over real socketpairs."""

from __future__ import annotations

import socket

from bench.swarm.connections import CLOSED, Conn
from bench.swarm.panel import Panel
from bench.swarm.plan import ClientSpec

from .parts import Parts, worker_plan

SPECS = [ClientSpec(i, f"r{i}", receives=True) for i in range(3)]


def test_only_the_panel_receivers_with_bytes_are_read_and_a_closed_one_is_left_alone() -> None:
    parts = Parts(worker_plan(SPECS))
    pairs = [socket.socketpair() for _ in SPECS]
    panel = Panel()
    try:
        conns = [parts.ready_conn(spec, ours) for spec, (ours, _) in zip(SPECS, pairs, strict=True)]
        for conn in conns:
            panel.add(conn)
        read: list[Conn] = []
        panel.read(read.append)
        assert read == [] and panel.reads == 0  # nothing has arrived: nobody read, no wait

        pairs[1][1].sendall(b"r0: hello\n")
        pairs[2][1].sendall(b"r0: hello\n")
        conns[2].state = CLOSED
        panel.read(read.append)
        assert read == [conns[1]] and panel.reads == 1
    finally:
        panel.close()
        parts.close()
        for _, theirs in pairs:
            theirs.close()


def test_a_panel_read_is_a_real_read_and_the_batch_finds_nothing_after_it() -> None:
    """Through the receiver: the panel's read takes the line (recorded once),
    and the same connection's event later in the batch reads nothing."""
    parts = Parts(worker_plan(SPECS))
    ours, theirs = socket.socketpair()
    panel = Panel()
    try:
        conn = parts.ready_conn(SPECS[0], ours)
        panel.add(conn)
        theirs.sendall(b"*** x joined the chat\n")
        before = parts.receiver.bytes_in
        panel.read(parts.receiver.readable)
        assert parts.receiver.bytes_in - before == len(b"*** x joined the chat\n")
        parts.receiver.readable(conn)  # the batch's own event: nothing left, no error
        assert parts.receiver.bytes_in - before == len(b"*** x joined the chat\n") and conn.state != CLOSED
    finally:
        panel.close()
        parts.close()
        theirs.close()
