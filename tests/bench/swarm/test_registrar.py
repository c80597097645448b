"""The registrar: connects at the ramp, registers through the adapter's state
machine against a real server, and says why a connection failed."""

from __future__ import annotations

import selectors
import time
from collections.abc import Callable

from bench.swarm.connections import CONNECTING, REGISTERING
from bench.swarm.messages import Ready
from bench.swarm.plan import ClientSpec
from server.app import ChatServer
from tests.bench.swarm.parts import Parts, worker_plan

DEADLINE_S = 10.0


def _drive(parts: Parts) -> Ready:
    """The worker's loop, reduced to registration: until Ready is reported."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        parts.registrar.tick(time.monotonic_ns())
        ready = [r for r in parts.reports if isinstance(r, Ready)]
        if ready:
            return ready[0]
        for key, mask in parts.sockets.sel.select(0.05):
            conn = key.data
            if mask & selectors.EVENT_WRITE and conn.state in (CONNECTING, REGISTERING):
                parts.registrar.writable(conn)
            if mask & selectors.EVENT_READ:
                parts.receiver.readable(conn)
    raise AssertionError(f"no Ready report within {DEADLINE_S}s: {parts.reports}")


def test_every_client_registers_and_senders_and_receivers_are_known(
    make_server: Callable[..., ChatServer],
) -> None:
    server = make_server()
    specs = [ClientSpec(i, f"cbt-{i}", receives=True, slot=i if i < 2 else None) for i in range(6)]
    parts = Parts(worker_plan(specs, port=server.address[1]))
    try:
        ready = _drive(parts)
        assert sorted(ready.registered) == list(range(6)) and ready.failures == {}
        assert sorted(c.spec.cid for c in parts.registrar.sender_conns) == [0, 1]
        assert all(c.tracker is not None for c in parts.registrar.receiver_conns)
        assert len(parts.registrar.receiver_conns) == 6
    finally:
        parts.close()


def test_a_refused_name_and_a_refused_connection_are_failures_with_their_reason(
    make_server: Callable[..., ChatServer],
) -> None:
    server = make_server()
    taken = [ClientSpec(0, "same", receives=True, slot=0), ClientSpec(1, "SAME", receives=True)]
    parts = Parts(worker_plan(taken, port=server.address[1]))
    try:
        ready = _drive(parts)
        assert ready.registered == [0]
        ((reason, count),) = ready.failures.items()
        assert count == 1 and reason.startswith("refused: Name taken")
    finally:
        parts.close()
    closed = Parts(worker_plan([ClientSpec(0, "x", receives=True, slot=0)], port=1))
    try:
        ready = _drive(closed)
        assert ready.registered == [] and ready.failures == {"connect: ECONNREFUSED": 1}
    finally:
        closed.close()
