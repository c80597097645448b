"""The plan: clients, rooms and streams, and so the audience of every message.

A **client** is one connection the harness opens (:class:`Client`); a
**room** is a set of receiving clients that hear the same messages
(:class:`Room`: a channel on IRC, a topic on a broker, the one room of our
server today); a **stream** is one sender's messages to one room
(:class:`Stream`).  A probe's ``SENDER`` field is its stream id, and the
integrity of a stream is checked per receiver: sequence numbers count per
stream, so a receiver that hears only some of a sender's rooms sees no
gaps.

The **audience** of a stream is the room's members, without the sender unless
the target delivers a sender's own messages (:attr:`Plan.hears_self`; no
target here does), restricted to the clients actually present (registered).
Expected deliveries, the integrity pairs (receiver, stream) and the expected
count of every label (:mod:`bench.workload.labels`) are computed from it and
nowhere else.

**Membership over time** (:mod:`bench.workload.membership`): with churn or
a storm, a receiving client is a *seat* whose connection may leave and be
replaced during the run (:attr:`Plan.membership`); the audience of a stream
is then its room's members *while they are in*.  The plan says who leaves
when; what each connection was owed follows from when the server confirmed
its join and when its leave was sent (:mod:`bench.swarm.churn`).

A one-room run -- every receiver hears every sender -- is :func:`one_room`;
a workload's (:mod:`bench.workload.model`) is laid out by
:mod:`bench.workload.build` and built by the swarm.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

from bench.workload.membership import Membership


@dataclass(frozen=True, slots=True)
class Client:
    """One connection of the run."""

    cid: int  #: harness-wide client id
    name: str  #: the name it registers with
    receives: bool  #: a measured receiver: its deliveries are counted
    node: int = 0  #: which of the target's nodes it connects to (a cluster)
    transport: str = "plain"  #: ``plain`` or ``tls``: how it reaches the target
    #: which monotonic clock its stamps are on (0: the harness's own; a Locust
    #: worker on another machine or in a time namespace stamps on another)
    clock: int = 0


@dataclass(frozen=True, slots=True)
class Room:
    """Receivers that hear the same messages."""

    #: the room's name ("r12", "p7"); "" is the target's one room (our
    #: server's lobby, the adapter's default channel, topic or subject).
    #: Each protocol spells it its own way on the wire (``#r12`` on our
    #: server and IRC, a topic ``chatbench/r12`` on MQTT, ...), and hands
    #: its deliveries over under the name ``#r12 SENDER`` (:meth:`Plan.sender_names`)
    name: str
    members: tuple[int, ...]  #: client ids of its receiving members


@dataclass(frozen=True, slots=True)
class Stream:
    """One sender's messages to one room: the unit of order and integrity."""

    sid: int  #: stream id: the probe's SENDER field
    sender: int  #: client id of the sender
    room: int  #: index in :attr:`Plan.rooms`
    slot: int  #: the sender's slot in the open-loop schedule


@dataclass(frozen=True)
class Plan:
    """Who is where and who must hear what (see the module docstring)."""

    clients: Mapping[int, Client]
    rooms: tuple[Room, ...]
    streams: Mapping[int, Stream]  #: stream id -> stream
    #: the target delivers a sender's own messages back to it
    hears_self: bool = False
    #: nodes of the target (a cluster has several; a delivery's path crosses them)
    nodes: int = 1
    #: who is a member when (churn, a storm); None: every client stays for the whole run
    membership: Membership | None = None
    #: monotonic clocks the run's clients stamp with (Locust: workers on other
    #: machines; a latency between two of them is corrected by their offsets)
    clocks: int = 1

    @cached_property
    def transports(self) -> frozenset[str]:
        """The transports the plan's clients use (``plain``, ``tls``)."""
        return frozenset(c.transport for c in self.clients.values())

    # -- who hears what ------------------------------------------------------------

    def audience(self, sid: int, present: Collection[int] | None = None) -> list[int]:
        """The receivers that must get every message of stream ``sid``
        (of those ``present``, when given)."""
        stream = self.streams[sid]
        members = self.rooms[stream.room].members
        sender = None if self.hears_self else stream.sender
        if present is None:
            return [cid for cid in members if cid != sender]
        return [cid for cid in members if cid != sender and cid in present]

    @cached_property
    def _heard(self) -> dict[int, tuple[int, ...]]:
        heard: dict[int, list[int]] = {}
        for sid in self.streams:
            for cid in self.audience(sid):
                heard.setdefault(cid, []).append(sid)
        return {cid: tuple(sids) for cid, sids in heard.items()}

    def heard_by(self, cid: int) -> tuple[int, ...]:
        """The streams receiver ``cid`` must hear."""
        return self._heard.get(cid, ())

    def audience_sizes(self, present: Collection[int]) -> dict[int, int]:
        """Per stream, how many of the ``present`` clients must receive each message."""
        return {sid: len(self.audience(sid, present)) for sid in self.streams}

    def expected(self, counts: Mapping[int, int], present: Collection[int]) -> int:
        """Deliveries owed for ``counts`` (stream id -> messages sent) to the
        ``present`` receivers."""
        sizes = self.audience_sizes(present)
        return sum(count * sizes.get(sid, 0) for sid, count in counts.items())

    def sent_to(self, cid: int, counts: Mapping[int, int]) -> dict[int, int]:
        """``counts`` restricted to the streams receiver ``cid`` hears: what it was owed."""
        return {sid: counts.get(sid, 0) for sid in self.heard_by(cid)}

    # -- names ---------------------------------------------------------------------

    def sender_names(self) -> dict[int, str]:
        """Stream id -> the name its messages arrive under: the sender's
        name, after ``#ROOM `` for a room other than the target's one room
        (``#r12 alice``, as our server writes ``#r12 alice: TEXT``).  Every
        adapter hands deliveries over under that name, so a line delivered
        in the wrong room is a fault, never a delivery."""
        rooms, clients = self.rooms, self.clients
        return {sid: delivery_name(rooms[s.room].name, clients[s.sender].name) for sid, s in self.streams.items()}

    @cached_property
    def _streams_of(self) -> dict[int, tuple[Stream, ...]]:
        out: dict[int, list[Stream]] = {}
        for stream in sorted(self.streams.values(), key=lambda s: s.slot):
            out.setdefault(stream.sender, []).append(stream)
        return {cid: tuple(streams) for cid, streams in out.items()}

    def streams_of(self, cid: int) -> tuple[Stream, ...]:
        """The streams client ``cid`` sends, in slot order."""
        return self._streams_of.get(cid, ())

    def steady(self, cid: int) -> bool:
        """Client ``cid`` stays for the whole run (no churn or storm takes its seat)."""
        return self.membership is None or self.membership.steady(cid)

    @property
    def one_room(self) -> bool:
        """Every stream goes to the target's one room."""
        return all(room.name == "" for room in self.rooms)


def delivery_name(room: str, sender: str) -> str:
    """The name a message of ``sender`` in ``room`` arrives under (see :meth:`Plan.sender_names`)."""
    return f"#{room} {sender}" if room else sender


def one_room(
    clients: Iterable[Client],
    senders: Mapping[int, int],
    *,
    hears_self: bool = False,
    nodes: int = 1,
    clocks: int = 1,
) -> Plan:
    """Every receiver in one room, every sender sending to it: ``senders``
    maps a sending client's id to its schedule slot, and each sender's stream
    id is its client id (the probe's ``SENDER`` is then the sender's id, as it
    always was)."""
    by_id = {c.cid: c for c in clients}
    room = Room("", tuple(c.cid for c in by_id.values() if c.receives))
    streams = {cid: Stream(sid=cid, sender=cid, room=0, slot=slot) for cid, slot in senders.items()}
    return Plan(clients=by_id, rooms=(room,), streams=streams, hears_self=hears_self, nodes=nodes, clocks=clocks)
