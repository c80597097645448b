"""What the parent hands each worker process: who to connect, and when to send.

:func:`make_plans` spreads a :class:`~bench.swarm.config.SwarmConfig`'s
connections over the workers (:class:`WorkerPlan`, one per process, fixed
before it starts); :class:`Schedule` is the open-loop timetable every worker
gets with the ``start`` command.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from bench import wire
from bench.measure.intervals import DEFAULT_INTERVAL_S
from bench.net.tls import TlsOptions
from bench.swarm.config import SwarmConfig
from bench.wire.credentials import LOGIN_NAME, Logins
from bench.workload import Client, Plan, Room, Stream, one_room
from bench.workload.build import Layout
from bench.workload.membership import Churn, Membership
from bench.workload.traffic import Traffic

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
    #: its (first) stream's slot in the schedule, None if it does not send;
    #: in one room a sender's only stream (0..S-1), with rooms one of several
    slot: int | None = None
    node: int = 0  #: which of the target's node addresses it connects to (:func:`node_of`)
    #: the plan's rooms it joins (members and senders): ("",) is the target's one room
    rooms: tuple[str, ...] = ("",)


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
    payload_bytes: int  #: every message's payload, unless the schedule draws sizes
    ramp_per_s: float = 0.0  #: this worker's connections per second; 0 = no limit
    max_inflight: int = 64  #: registrations in progress at once
    connect_timeout_s: float = 30.0
    stalled_rcvbuf: int = 4096
    #: Spin (poll without sleeping) when the next send is due within this many
    #: microseconds; 0 never spins.  Without spinning the loop sleeps to the
    #: microsecond (see :meth:`bench.swarm.worker.Worker.run`) and a send is
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
    #: Seconds per interval of the run's time axis (bench.measure.intervals).
    interval_s: float = DEFAULT_INTERVAL_S
    #: Worker processes of the run (connect probes are dealt over them).
    workers: int = 1
    #: What every name of the run starts with (``cbTAG-``): a churn
    #: driver's probes are named with it, and notices about it are counted.
    name_stem: str = ""
    #: Every connection over TLS with these settings (None: plaintext).
    tls: TlsOptions | None = None
    #: Client ``cid`` logs in with ``logins.for_client(cid)`` (None: no login).
    logins: Logins | None = None


@dataclass(frozen=True, slots=True)
class Schedule:
    """What the parent sends with ``start``: the open-loop timetable.

    Global message ``m`` (0 <= m < total) is sent by stream slot ``m % senders``
    with sequence number ``m // senders`` at ``t0_ns + m * 1e9 / rate``
    (all at ``t0_ns`` when ``rate`` is 0: a burst), with the plan's one
    payload size; a workload's ``traffic`` may draw each of the three instead
    (:mod:`bench.workload.traffic`; a stream's sequence numbers then count
    its own messages).  Messages with ``m < warmup`` are the warm-up and are
    not measured.
    """

    t0_ns: int
    rate: float  #: total messages/s
    total: int
    senders: int  #: stream slots
    warmup: int
    #: stream id -> receivers present that must get each of its messages
    #: (the plan's audience, of the clients that registered)
    audience: dict[int, int]
    traffic: Traffic = field(default_factory=Traffic)

    def intended_ns(self, m: int) -> int:
        if self.traffic.offset_ns is not None:
            return self.t0_ns + int(self.traffic.offset_ns[m])
        if self.rate <= 0:
            return self.t0_ns
        return self.t0_ns + int(m * 1_000_000_000 / self.rate)

    def slot_messages(self) -> list[Sequence[int]]:
        """Per stream slot, its messages' numbers in order (the index of one is its sequence number)."""
        return self.traffic.slot_messages(self.senders, self.total)

    @property
    def measure_start_ns(self) -> int:
        return self.intended_ns(self.warmup)

    @property
    def end_ns(self) -> int:
        """Intended time of the last message."""
        return self.intended_ns(max(0, self.total - 1))

    def first_at(self, t_ns: int) -> int:
        """The first message intended at or after ``t_ns`` (``total`` if none)."""
        if t_ns <= self.t0_ns:
            return 0
        if self.rate <= 0:
            return self.total
        m = min(self.total, max(0, math.ceil((t_ns - self.t0_ns) * self.rate / 1e9) - 2))
        while m < self.total and self.intended_ns(m) < t_ns:
            m += 1
        return m

    def first_seq_at(self, slot: int, t_ns: int) -> int:
        """Sender ``slot``'s first sequence number intended at or after ``t_ns``."""
        return max(0, -((slot - self.first_at(t_ns)) // self.senders))

    def messages_of(self, slot: int) -> int:
        """How many messages stream slot ``slot`` sends (round robin only: see :meth:`slot_messages`)."""
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
    ones; with ``nodes`` > 1 each on node :func:`node_of` its id.  Who is in
    which room and who sends is the workload's layout (``config.layout``:
    in one room the first S clients send, or S dedicated senders)."""
    n, s, k = config.clients, config.sender_count, config.stalled_clients
    layout = config.layout
    first_slot: dict[int, int] = {}
    for slot, (sender, _) in enumerate(layout.streams):
        first_slot.setdefault(sender, slot)
    one = config.workload.one_room
    names = [name for name, _ in layout.rooms]
    rooms_of = layout.rooms_of
    given = login_names(config)

    def name(cid: int, default: str) -> str:
        return given[cid] if given is not None else f"{NAME_PREFIX}{tag}-{default}"

    def spec(cid: int, receives: bool) -> ClientSpec:
        rooms = ("",) if one else tuple(names[r] for r in rooms_of.get(cid, ()))
        return ClientSpec(cid, name(cid, str(cid)), receives, first_slot.get(cid), node_of(cid, nodes), rooms)

    specs = [spec(cid, True) for cid in range(n)]
    if config.dedicated_senders:
        specs += [spec(cid, False) for cid in range(n, n + s)]
    first_stalled = len(specs)
    # Stalled clients sit in the biggest room (the one room), where they hold up the most.
    biggest = ("",) if one else (max(layout.rooms, key=lambda room: len(room[1]))[0],)
    stalled = [
        ClientSpec(cid, name(cid, f"st{cid - first_stalled}"), receives=False, node=node_of(cid, nodes), rooms=biggest)
        for cid in range(first_stalled, first_stalled + k)
    ]
    return specs, stalled


def membership_of(specs: list[ClientSpec], churn: Churn, seed: int, start_s: float) -> Membership | None:
    """Who is a member when (None: everyone stays): the churnable seats are
    the receivers that do not send; churn begins at ``start_s`` (the end of
    the warm-up, on the run's time axis)."""
    if not churn.active:
        return None
    seats = tuple(c.cid for c in specs if c.receives and c.slot is None)
    pool: tuple[int, ...] = ()
    if churn.storm_node is not None:  # a cluster's storm on one node: that node's seats
        pool = tuple(c.cid for c in specs if c.cid in seats and c.node == churn.storm_node)
    return Membership(churn, seats, seed, start_s, pool)


def plan_of(
    specs: list[ClientSpec],
    nodes: int = 1,
    layout: Layout | None = None,
    first_stream: int = 0,
    membership: Membership | None = None,
    transport: str = "plain",
) -> Plan:
    """The run's workload plan.  Without ``layout`` (or with a one-room
    layout): one room of every receiver, every sender sending to it, its
    stream id its client id.  With a layout of rooms: its rooms and streams,
    stream ids from ``first_stream`` on (above every client id, so a
    receiver never mistakes another's stream for its own).  Every client
    over ``transport`` (``plain`` or ``tls``).  ``membership``: who leaves
    when (churn, a storm)."""
    clients = [Client(c.cid, c.name, c.receives, c.node, transport) for c in specs]
    if layout is None or all(name == "" for name, _ in layout.rooms):
        plan = one_room(clients, {c.cid: c.slot for c in specs if c.slot is not None}, nodes=nodes)
        return plan if membership is None else replace(plan, membership=membership)
    receives = {c.cid for c in specs if c.receives}
    rooms = tuple(Room(name, tuple(m for m in members if m in receives)) for name, members in layout.rooms)
    streams = {
        first_stream + slot: Stream(first_stream + slot, sender, room, slot)
        for slot, (sender, room) in enumerate(layout.streams)
    }
    return Plan(clients={c.cid: c for c in clients}, rooms=rooms, streams=streams, nodes=nodes, membership=membership)


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
    warmup_s = config.warmup_messages / config.total_rate if config.rate > 0 else 0.0
    membership = membership_of(specs, config.churn, config.workload.seed, warmup_s)
    workload = plan_of(
        specs, max(1, len(nodes)), config.layout, len(specs) + len(stalled), membership, transport=config.transport
    )
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
            interval_s=config.interval_s,
            workers=p,
            name_stem=f"{NAME_PREFIX}{tag}-",
            tls=config.tls,
            logins=config.logins,
            **inflight,
        )
        for w in range(p)
    ]
