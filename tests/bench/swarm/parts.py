"""What the swarm's unit tests share: a worker's parts wired together by hand,
over real sockets (a socketpair, or a real server), without a worker process."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from bench import wire
from bench.measure.integrity import IntegrityTracker
from bench.swarm.connections import READY, Conn, Sockets
from bench.swarm.messages import Report
from bench.swarm.plan import ClientSpec, WorkerPlan, plan_of
from bench.swarm.receiver import Receiver
from bench.swarm.registrar import Registrar
from bench.swarm.sender import Sender

#: A reader of a test's socketpair gives up after this long.
READ_TIMEOUT_S = 5.0


def worker_plan(specs: list[ClientSpec], port: int = 9, nodes: int = 1, protocol: str = "chat") -> WorkerPlan:
    """One worker's plan for ``specs`` (the run's whole plan is made of them too)."""
    return WorkerPlan(
        index=0,
        host="127.0.0.1",
        port=port,
        clients=tuple(specs),
        stalled=(),
        workload=plan_of(specs, nodes=nodes),
        payload_bytes=16,
        protocol=protocol,
        rx_clock="read",
    )


@dataclass
class Parts:
    """A worker's registrar, sender and receiver over one :class:`Sockets`."""

    plan: WorkerPlan
    sockets: Sockets = field(default_factory=Sockets)
    reports: list[Report] = field(default_factory=list)

    def __post_init__(self) -> None:
        adapter = wire.get(self.plan.protocol)
        self.registrar = Registrar(self.plan, adapter, self.sockets, self.reports.append)
        self.sender = Sender(self.plan.payload_bytes, adapter, self.sockets)
        self.receiver = Receiver(self.plan, adapter, self.registrar, self.sender)

    def ready_conn(self, spec: ClientSpec, sock: socket.socket) -> Conn:
        """``sock`` as a registered connection of ``spec`` (a receiver gets a tracker)."""
        sock.setblocking(False)
        adapter = wire.get(self.plan.protocol)
        conn = Conn(spec=spec, sock=sock, decoder=adapter.decoder(), registration=adapter.registration(spec.name))
        conn.fd = sock.fileno()
        conn.state = READY
        self.sockets.add(conn)
        self.sockets.want_write(conn, False)
        if spec.receives:
            conn.tracker = IntegrityTracker()
            self.registrar.receiver_conns.append(conn)
        if spec.slot is not None:
            self.registrar.sender_conns.append(conn)
        return conn

    def close(self) -> None:
        self.sockets.close_all([])


def read_all(sock: socket.socket, size: int) -> bytes:
    """Exactly ``size`` bytes from a blocking ``sock`` (with a timeout)."""
    sock.settimeout(READ_TIMEOUT_S)
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data
