"""A workload for Locust users: the same rooms and streams as the swarm's, per user.

A Locust run has ``users`` users, numbered ``0..users-1`` in the order they
start; user ``i`` is the swarm's client ``i`` of the same workload laid out
for that many clients (:func:`bench.workload.build.layout`, the same seed),
so the same workload file gives the same rooms, the same senders and the same
shares of the rate under either load generator.  :func:`user_plan` is what
one user needs: the rooms to join, and per room it sends to, its stream id
(the probe's ``SENDER`` field), its share of the total rate and the name its
messages arrive under; :func:`stream_names` is every stream's name, for the
receiving side's recorder (:class:`bench.measure.recorder.DeliveryRecorder`).
:func:`payload_size` draws one message's payload size.

Stream ids follow the swarm: in one room a sender's stream id is its user
index; with rooms they are ``users + slot``, above every user index.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from bench.workload.build import Layout, layout
from bench.workload.model import PayloadSizes, Workload
from bench.workload.plan import delivery_name

#: One-room runs: how many of the users send when the workload does not say
#: (the swarm's default: min(clients, 10)).
DEFAULT_SENDERS = 10


@dataclass(frozen=True, slots=True)
class UserSend:
    """One stream of a user: what it sends where, and how often."""

    room: str  #: the plan's room ("" the target's one room)
    stream: int  #: stream id: the probe's SENDER field
    rate_share: float  #: its share of the workload's total rate (sums to 1 over every user's streams)


@dataclass(frozen=True, slots=True)
class UserPlan:
    """What Locust user ``index`` of ``users`` joins and sends."""

    index: int
    rooms: tuple[str, ...]  #: the rooms to join (members and senders): ("",) the one room
    sends: tuple[UserSend, ...]


@lru_cache(maxsize=8)
def _layout(workload: Workload, users: int) -> Layout:
    senders = workload.senders_per_room if workload.one_room and workload.senders_per_room else None
    return layout(workload, users, 0, senders or min(users, DEFAULT_SENDERS))


def _stream_id(workload: Workload, users: int, slot: int, sender: int) -> int:
    return sender if workload.one_room else users + slot


def user_plan(workload: Workload, index: int, users: int) -> UserPlan:
    """User ``index``'s rooms and streams, of ``users`` users."""
    lay = _layout(workload, users)
    names = [name for name, _ in lay.rooms]
    rooms = ("",) if workload.one_room else tuple(names[r] for r in lay.rooms_of.get(index, ()))
    count = len(lay.streams)
    sends = tuple(
        UserSend(
            names[room],
            _stream_id(workload, users, slot, sender),
            lay.weights[slot] if lay.weights is not None else 1.0 / count,
        )
        for slot, (sender, room) in enumerate(lay.streams)
        if sender == index
    )
    return UserPlan(index, rooms, sends)


def stream_names(workload: Workload, users: int, name_of: Callable[[int], str]) -> dict[int, str]:
    """Stream id -> the name its messages arrive under (``name_of``: user index -> its name)."""
    lay = _layout(workload, users)
    return {
        _stream_id(workload, users, slot, sender): delivery_name(lay.rooms[room][0], name_of(sender))
        for slot, (sender, room) in enumerate(lay.streams)
    }


def payload_size(payload: PayloadSizes | None, default: int, rng: random.Random) -> int:
    """One message's payload bytes: ``default`` without a distribution."""
    if payload is None:
        return default
    if payload.uniform:
        return rng.randint(payload.sizes[0], payload.sizes[1])
    if not payload.weights:
        return payload.sizes[0]
    return rng.choices(payload.sizes, weights=payload.weights)[0]
