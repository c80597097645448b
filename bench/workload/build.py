"""A workload laid out for one run: which client is in which room, who sends where.

:func:`layout` turns a :class:`~bench.workload.model.Workload` and the run's
client counts into a :class:`Layout`, by client index (the receivers are
``0..N-1``, dedicated senders ``N..N+S-1``, as the swarm numbers its
clients); the swarm names the clients and builds the
:class:`~bench.workload.plan.Plan` from it.  Deterministic: every draw comes
from the workload's seed, one random stream per purpose, so the same
workload and counts always give the same layout.

The memberships: the rooms' sizes come from the workload's size
distribution; every receiver is then put in as many rooms as the sizes
allow, spread as evenly as possible (each in ``floor(T/N)`` or
``ceil(T/N)`` rooms for T memberships), never twice in one room.  The rooms
are filled biggest first, each from the clients with the most memberships
still to place (ties broken at random): the constructive proof of the
Gale-Ryser theorem, so whenever no room is bigger than the client count,
every room gets exactly its size.

The streams: a room's senders are ``senders_per_room`` of its members drawn
at random (a personal room's: one other client, which then joins it);
with dedicated senders (extra connections that do not receive) each room's
streams are dealt to them in turn.  A stream's share of the messages is
equal, or Zipf over a random ranking (the publisher skew); with the rate per
room, every room gets the same share, split over its streams.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from bench.workload.model import Workload, WorkloadError

#: Name of group room i (rank order: with Zipf sizes ``r0`` is the biggest)
#: and of client c's personal room; both valid room names everywhere (our
#: server's ``#[a-z0-9._-]{1,32}``, IRC channels, MQTT topic levels, NATS tokens).
GROUP_ROOM = "r{}"
PERSONAL_ROOM = "p{}"


@dataclass(frozen=True)
class Layout:
    """Rooms and streams by client index (see the module docstring)."""

    #: (name, receiving members); name "" is the target's one room
    rooms: tuple[tuple[str, tuple[int, ...]], ...]
    #: (sender index, room index) per stream, in schedule slot order
    streams: tuple[tuple[int, int], ...]
    #: each stream's share of the messages (summing to 1); None: all equal
    weights: tuple[float, ...] | None = None

    @cached_property
    def senders(self) -> tuple[int, ...]:
        """The clients that send, in order."""
        return tuple(sorted({sender for sender, _ in self.streams}))

    @cached_property
    def rooms_of(self) -> dict[int, tuple[int, ...]]:
        """Client index -> the rooms it must be in: those it is a member of,
        then those it sends to (room indexes, in order, each once)."""
        out: dict[int, list[int]] = {}
        for r, (_, members) in enumerate(self.rooms):
            for c in members:
                out.setdefault(c, []).append(r)
        for sender, r in self.streams:
            mine = out.setdefault(sender, [])
            if r not in mine:
                mine.append(r)
        return {c: tuple(rs) for c, rs in out.items()}

    @property
    def rooms_with_streams(self) -> int:
        return len({r for _, r in self.streams})


def layout(workload: Workload, receivers: int, dedicated: int, senders: int) -> Layout:
    """The layout of a run of ``receivers`` clients plus ``dedicated``
    sending connections; ``senders``: in one room, how many send (the first
    ones, or the dedicated ones)."""
    if workload.one_room:
        return _one_room(workload, receivers, dedicated, senders)
    rng = _rng(workload, "rooms")
    sizes = room_sizes(workload, receivers, rng)
    members = assign(sizes, receivers, rng)
    rooms = [(GROUP_ROOM.format(i), tuple(m)) for i, m in enumerate(members)]
    streams = _group_streams(workload, rooms, receivers, dedicated, _rng(workload, "senders"))
    if workload.personal:
        _personal(workload, rooms, streams, receivers, dedicated, _rng(workload, "personal"))
    if not streams:
        raise WorkloadError("the workload has no stream: no room has a member to send")
    return Layout(tuple(rooms), tuple(streams), weights(workload, streams, _rng(workload, "skew")))


def _rng(workload: Workload, purpose: str) -> random.Random:
    """One random stream per purpose, from the workload's seed (a change in
    one aspect of a workload does not reshuffle the others)."""
    return random.Random(f"chatbench:{workload.seed}:{purpose}")


def _one_room(workload: Workload, receivers: int, dedicated: int, senders: int) -> Layout:
    """Today's run: every receiver in the target's one room; the first
    ``senders`` clients send (or the dedicated ones)."""
    first = receivers if dedicated else 0
    streams = tuple((first + i, 0) for i in range(dedicated or senders))
    return Layout((("", tuple(range(receivers))),), streams, weights(workload, list(streams), _rng(workload, "skew")))


# -- room sizes ----------------------------------------------------------------------


def room_sizes(workload: Workload, n: int, rng: random.Random) -> list[int]:
    """The group rooms' sizes for ``n`` receivers, biggest first for Zipf."""
    dist = workload.sizes
    k = workload.per_client or 1
    if dist.kind == "zipf":
        r = workload.rooms or 1
        shares = [(i + 1) ** -dist.s for i in range(r)]
        return _capped(_apportion(n * k, shares), n)
    if dist.kind == "uniform":
        if workload.rooms is not None:
            return [min(n, rng.randint(dist.low, dist.high)) for _ in range(workload.rooms)]
        return _fill(n * k, n, lambda: rng.randint(dist.low, dist.high))
    if dist.low:  # fixed:M
        if workload.rooms is not None:
            return [min(n, dist.low)] * workload.rooms
        return _fill(n * k, n, lambda: dist.low)
    r = workload.rooms or 1
    if k > r:
        raise WorkloadError(f"{k} rooms per client needs at least {k} rooms (--rooms)")
    return _apportion(n * k, [1.0] * r)


def _apportion(total: int, shares: list[float]) -> list[int]:
    """``total`` split in proportion to ``shares`` (largest remainders), one
    each first while the total allows (no empty room)."""
    base = 1 if total >= len(shares) else 0
    rest = total - base * len(shares)
    whole = sum(shares)
    exact = [rest * s / whole for s in shares]
    out = [math.floor(x) for x in exact]
    left = rest - sum(out)  # < len(shares): the fractional parts add up to it
    for i in sorted(range(len(shares)), key=lambda i: (out[i] - exact[i], i))[:left]:
        out[i] += 1
    return [base + x for x in out]


def _capped(sizes: list[int], n: int) -> list[int]:
    """No room bigger than the ``n`` clients: the excess goes to the next
    rooms, in order, up to ``n`` each."""
    excess = sum(max(0, s - n) for s in sizes)
    out = [min(s, n) for s in sizes]
    for i in range(len(out)):
        if not excess:
            break
        more = min(excess, n - out[i])
        out[i] += more
        excess -= more
    return out


def _fill(total: int, n: int, draw: Callable[[], int]) -> list[int]:
    """Rooms of drawn sizes (each at most ``n``) until they hold ``total``
    memberships; the last one trimmed to fit."""
    sizes: list[int] = []
    held = 0
    while n > 0 and held < total:
        size = min(n, draw(), total - held)
        sizes.append(size)
        held += size
    return sizes


def assign(sizes: list[int], n: int, rng: random.Random) -> list[list[int]]:
    """Members for rooms of ``sizes`` among clients ``0..n-1``: each client
    in ``floor(T/n)`` or ``ceil(T/n)`` of them, none twice in a room (see
    the module docstring).  Members come back sorted."""
    if n <= 0:
        return [[] for _ in sizes]
    total = sum(sizes)
    base, extra = divmod(total, n)
    order = list(range(n))
    rng.shuffle(order)
    # quota -> clients with that many memberships still to place
    buckets: dict[int, list[int]] = {}
    for i, c in enumerate(order):
        buckets.setdefault(base + (1 if i < extra else 0), []).append(c)
    out: list[list[int]] = [[] for _ in sizes]
    for r in sorted(range(len(sizes)), key=lambda r: -sizes[r]):
        chosen: list[tuple[int, int]] = []
        need = sizes[r]
        for quota in sorted((q for q in buckets if q > 0), reverse=True):
            bucket = buckets[quota]
            while need and bucket:
                j = rng.randrange(len(bucket))
                bucket[j], bucket[-1] = bucket[-1], bucket[j]
                chosen.append((bucket.pop(), quota))
                need -= 1
            if not need:
                break
        for c, quota in chosen:
            buckets.setdefault(quota - 1, []).append(c)
        out[r] = sorted(c for c, _ in chosen)
    return out


# -- streams -------------------------------------------------------------------------


def _group_streams(
    workload: Workload, rooms: list[tuple[str, tuple[int, ...]]], n: int, dedicated: int, rng: random.Random
) -> list[tuple[int, int]]:
    per_room = workload.senders_per_room or 1
    streams: list[tuple[int, int]] = []
    for r, (_, members) in enumerate(rooms):
        if dedicated:
            for _ in range(per_room):
                streams.append((n + len(streams) % dedicated, r))
        elif members:
            for sender in sorted(rng.sample(members, min(per_room, len(members)))):
                streams.append((sender, r))
    return streams


def _personal(
    workload: Workload,
    rooms: list[tuple[str, tuple[int, ...]]],
    streams: list[tuple[int, int]],
    n: int,
    dedicated: int,
    rng: random.Random,
) -> None:
    """A room of its own per receiver, each with one stream: from a
    dedicated sender in turn, or from another client drawn at random (which
    is then a member too: it joins the room to send to it)."""
    for c in range(n):
        r = len(rooms)
        if dedicated:
            rooms.append((PERSONAL_ROOM.format(c), (c,)))
            streams.append((n + len(streams) % dedicated, r))
        elif n >= 2:
            other = rng.randrange(n - 1)
            other += other >= c
            rooms.append((PERSONAL_ROOM.format(c), tuple(sorted((c, other)))))
            streams.append((other, r))
        else:
            rooms.append((PERSONAL_ROOM.format(c), (c,)))


def weights(workload: Workload, streams: list[tuple[int, int]], rng: random.Random) -> tuple[float, ...] | None:
    """Each stream's share of the messages; None when all are equal."""
    count = len(streams)
    if not count:
        return None
    raw = [1.0] * count
    if workload.publisher_skew:
        ranks = list(range(1, count + 1))
        rng.shuffle(ranks)
        raw = [rank**-workload.publisher_skew for rank in ranks]
    if workload.rate_mode == "per-room":
        per_room: dict[int, float] = {}
        for (_, r), w in zip(streams, raw, strict=True):
            per_room[r] = per_room.get(r, 0.0) + w
        raw = [w / per_room[r] for (_, r), w in zip(streams, raw, strict=True)]
    total = sum(raw)
    shares = tuple(w / total for w in raw)
    if max(shares) - min(shares) <= 1e-12:
        return None
    return shares
