"""What the parent hands each worker process: who to connect, and when to send.

:func:`make_plans` spreads a :class:`~bench.swarm.config.SwarmConfig`'s
connections over the workers (:class:`WorkerPlan`, one per process, fixed
before it starts); :class:`Schedule` is the open-loop timetable every worker
gets with the ``start`` command.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench import wire
from bench.net.tls import TlsOptions
from bench.swarm.config import SwarmConfig
from bench.wire.credentials import LOGIN_NAME, Logins
from bench.workload import Client, Plan, one_room

#: Name prefix of harness clients; a random tag per run keeps names unique.
NAME_PREFIX = "cb"

#: ``--rx-clock`` choices.  ``kernel``: for TCP the kernel stamps each
#: ``recvmsg`` with the arrival time of the *last* segment it copied, so a
#: line from an earlier segment of the same read is stamped late, never early:
#: the measured latency stays an upper bound of the true one, and at most the
#: harness's read delay above it.  That delay is measured on its own
#: (``receive_lag_us``: read time minus kernel time, once per read).
RX_CLOCKS = ("kernel", "read")


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """One connection the worker opens."""

    cid: int  #: harness-wide client id; a sender's id is the probe's SENDER field
    name: str
    receives: bool  #: measured receiver (its deliveries are counted)
    slot: int | None = None  #: sender index 0..S-1 in the schedule, None if it does not send
    node: int = 0  #: which of the target's node addresses it connects to (:func:`node_of`)


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    """Everything one worker process needs, fixed before it starts."""

    index: int
    host: str
    port: int
    clients: tuple[ClientSpec, ...]
    stalled: tuple[ClientSpec, ...]
    #: the run's plan: who is in which room, and so who must hear each stream
    #: (its senders' names check that the server attributed every line right)
    workload: Plan
    payload_bytes: int
    ramp_per_s: float = 0.0  #: this worker's connections per second; 0 = no limit
    max_inflight: int = 64  #: registrations in progress at once
    connect_timeout_s: float = 30.0
    stalled_rcvbuf: int = 4096
    #: Spin (poll without sleeping) when the next send is due within this many
    #: microseconds; 0 never spins.  Without spinning the loop sleeps to the
    #: microsecond (see :data:`bench.swarm.worker.PRECISE_WAIT_S`) and a send is
    #: late by the kernel's wake-up time, typically tens of microseconds (which
    #: shows in the measured latency and in ``send_lag``).
    spin_us: int = 0
    protocol: str = "chat"  #: :data:`bench.wire.PROTOCOLS`
    #: ACK every read at once (``TCP_QUICKACK``): a server that does not set
    #: ``TCP_NODELAY`` then is not held up by Nagle waiting for our delayed ACKs.
    quickack: bool = False
    #: Which clock ends a delivery's latency: ``"kernel"`` (default) is the time
    #: the kernel queued the bytes on the receiving socket (``SO_TIMESTAMPNS``),
    #: so the harness's own delay in reading does not count as server latency;
    #: ``"read"`` is ``time.monotonic_ns()`` right after ``recv`` returned.
    #: Either way the start is the *intended* send time.  See :data:`RX_CLOCKS`.
    rx_clock: str = "kernel"
    #: A target of several nodes: every node's address, in node order; client
    #: ``spec`` connects to ``addresses[spec.node]``.  Empty: all to host:port.
    addresses: tuple[tuple[str, int], ...] = ()
    #: Every connection over TLS with these settings (None: plaintext).
    tls: TlsOptions | None = None
    #: Client ``cid`` logs in with ``logins.for_client(cid)`` (None: no login).
    logins: Logins | None = None


@dataclass(frozen=True, slots=True)
class Schedule:
    """What the parent sends with ``start``: the open-loop timetable.

    Global message ``m`` (0 <= m < total) is sent by sender slot ``m % senders``
    with sequence number ``m // senders`` at ``t0_ns + m * 1e9 / rate``
    (all at ``t0_ns`` when ``rate`` is 0: a burst).  Messages with
    ``m < warmup`` are the warm-up and are not measured.
    """

    t0_ns: int
    rate: float
    total: int
    senders: int
    warmup: int
    #: stream id -> receivers present that must get each of its messages
    #: (the plan's audience, of the clients that registered)
    audience: dict[int, int]

    def intended_ns(self, m: int) -> int:
        if self.rate <= 0:
            return self.t0_ns
        return self.t0_ns + int(m * 1_000_000_000 / self.rate)

    @property
    def measure_start_ns(self) -> int:
        return self.intended_ns(self.warmup)

    @property
    def end_ns(self) -> int:
        """Intended time of the last message."""
        return self.intended_ns(max(0, self.total - 1))

    def messages_of(self, slot: int) -> int:
        if slot >= self.total:
            return 0
        return (self.total - slot + self.senders - 1) // self.senders


def node_of(cid: int, nodes: int) -> int:
    """The node client ``cid`` connects to, of ``nodes``: round robin, so a
    delivery crosses nodes with probability (N-1)/N."""
    return cid % nodes


def login_names(config: SwarmConfig) -> list[str] | None:
    """The clients' names when they log in under names of their own
    (``--credentials FILE`` for our protocol: the file's users, in order);
    None: the harness names them."""
    logins = config.logins
    if logins is None or not logins.users or wire.get(config.protocol_name).login != LOGIN_NAME:
        return None
    return logins.users


def client_specs(config: SwarmConfig, tag: str, nodes: int = 1) -> tuple[list[ClientSpec], list[ClientSpec]]:
    """The run's measured connections (receivers and senders) and its stalled
    ones; with ``nodes`` > 1 each on node :func:`node_of` its id."""
    n, s, k = config.clients, config.sender_count, config.stalled_clients
    given = login_names(config)

    def name(cid: int, default: str) -> str:
        return given[cid] if given is not None else f"{NAME_PREFIX}{tag}-{default}"

    specs: list[ClientSpec] = []
    for cid in range(n):
        slot = cid if (not config.dedicated_senders and cid < s) else None
        specs.append(ClientSpec(cid, name(cid, str(cid)), receives=True, slot=slot, node=node_of(cid, nodes)))
    if config.dedicated_senders:
        for i in range(s):
            cid = n + i
            specs.append(ClientSpec(cid, name(cid, str(cid)), receives=False, slot=i, node=node_of(cid, nodes)))
    first_stalled = len(specs)
    stalled = [
        ClientSpec(cid, name(cid, f"st{cid - first_stalled}"), receives=False, node=node_of(cid, nodes))
        for cid in range(first_stalled, first_stalled + k)
    ]
    return specs, stalled


def plan_of(specs: list[ClientSpec], nodes: int = 1, transport: str = "plain") -> Plan:
    """The run's workload plan: one room of every receiver, every sender
    sending to it (its stream id is its client id); every client over
    ``transport`` (``plain`` or ``tls``)."""
    clients = [Client(c.cid, c.name, c.receives, c.node, transport) for c in specs]
    return one_room(clients, {c.cid: c.slot for c in specs if c.slot is not None}, nodes=nodes)


def make_plans(
    config: SwarmConfig,
    host: str,
    port: int,
    tag: str,
    connect_batch: int | None = None,
    addresses: list[tuple[str, int]] | None = None,
) -> list[WorkerPlan]:
    """One plan per worker: connections dealt round-robin, ramp and
    registrations in flight shared evenly (``connect_batch``: the target's
    default when the config names none).  ``addresses``: a target's nodes
    (:meth:`bench.targets.Target.node_addresses`); with two or more, client
    ``cid`` connects to node :func:`node_of` its id and the plans say who is where."""
    nodes = tuple(addresses) if addresses is not None and len(addresses) > 1 else ()
    specs, stalled = client_specs(config, tag, max(1, len(nodes)))
    workload = plan_of(specs, nodes=max(1, len(nodes)), transport=config.transport)
    p = config.worker_count
    batch = config.connect_batch or connect_batch
    inflight = {"max_inflight": max(1, batch // p)} if batch else {}
    return [
        WorkerPlan(
            index=w,
            host=host,
            port=port,
            clients=tuple(specs[w::p]),
            stalled=tuple(stalled[w::p]),
            workload=workload,
            payload_bytes=config.payload_bytes,
            ramp_per_s=config.ramp_per_s / p if config.ramp_per_s > 0 else 0.0,
            connect_timeout_s=config.connect_timeout_s,
            stalled_rcvbuf=config.stalled_rcvbuf,
            spin_us=config.spin_us,
            protocol=config.protocol_name,
            quickack=config.quickack,
            rx_clock=config.rx_clock,
            addresses=nodes,
            tls=config.tls,
            logins=config.logins,
            **inflight,
        )
        for w in range(p)
    ]
