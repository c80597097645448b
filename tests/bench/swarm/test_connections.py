"""A worker's connections: one end per connection, counted under the server's
reason when it gave one; the harness's own closes are not disconnects."""

from __future__ import annotations

import socket

from bench.swarm.connections import CLOSED, STALLED
from bench.swarm.plan import ClientSpec
from tests.bench.swarm.parts import Parts, worker_plan

A, B, C = (ClientSpec(i, f"c{i}", receives=True) for i in range(3))


def test_an_end_is_counted_once_under_the_servers_reason() -> None:
    parts = Parts(worker_plan([A, B, C]))
    pairs = [socket.socketpair() for _ in range(3)]
    try:
        a, b, c = (parts.ready_conn(spec, ours) for spec, (ours, _) in zip((A, B, C), pairs, strict=True))
        a.end_reason = "disconnected: excess flood"
        parts.sockets.close(a, "closed by server")
        parts.sockets.close(a, "closed by server")  # twice: still one end
        parts.sockets.close(b, "recv: Connection reset by peer")
        parts.sockets.close(c, None)  # the harness chose to: not a disconnect
        assert dict(parts.sockets.disconnects) == {"disconnected: excess flood": 1, "recv: Connection reset by peer": 1}
        assert {a.state, b.state, c.state} == {CLOSED} and not parts.sockets.conns
    finally:
        parts.close()
        for _, peer in pairs:
            peer.close()


def test_a_stalled_connection_is_closed_without_the_selector() -> None:
    parts = Parts(worker_plan([A]))
    ours, peer = socket.socketpair()
    try:
        conn = parts.ready_conn(A, ours)
        parts.sockets.forget(conn)
        conn.state = STALLED
        parts.sockets.close(conn, None)
        assert conn.state == CLOSED and ours.fileno() == -1
    finally:
        parts.close()
        peer.close()
