"""Which lines of a flusher round go to whom, with no sockets (sans-IO).

A round is the lines broadcast since the last one, in order, each with its
audience (a snapshot of (member, outbox) pairs) and the member it is not
for (its sender).  The ``queued`` flusher (:mod:`server.fanout.queued`)
cuts the round into *runs*, each given to every recipient as one block:

* consecutive lines with the same snapshot are one run;
* consecutive lines whose snapshots share an ``origin`` (one room, people
  joining and leaving between its lines: each join and part makes a new
  snapshot) are one *mixed* run.  Line by line, churn of 500 connections a
  second in a room of 1,000 would be a million sends a second.  The members
  of every snapshot of a mixed run get the whole run; the few who came or
  went (and the run's senders) are *special* and get the lines of the
  snapshots they were in (:func:`mixed_audience`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

#: The audience of a broadcast: the hub's immutable snapshot of (member,
#: outbox) pairs; with the ``queued`` strategy every outbox is a ``QueuedOutbox``.
BroadcastTargets = tuple[tuple[object, Any], ...]
#: One broadcast of a round: (audience, line, member it is not for).
Item = tuple[BroadcastTargets, bytes, object]
#: Numbered lines: (the broadcast's number, its bytes).
Lines = list[tuple[int, bytes]]


def split_runs(items: list[Item]) -> Iterator[tuple[int, int, bool]]:
    """The round's runs as (start, stop, mixed): consecutive lines with the
    same snapshot, or (mixed) with snapshots of the same origin."""
    start = 0
    count = len(items)
    while start < count:
        targets = items[start][0]
        origin = getattr(targets, "origin", None)
        stop = start + 1
        mixed = False
        while stop < count:
            other = items[stop][0]
            if other is not targets:
                if origin is None or getattr(other, "origin", None) is not origin:
                    break
                mixed = True
            stop += 1
        yield start, stop, mixed
        start = stop


def lines_for(member: object, run: list[Item], first_seq: int) -> Lines:
    """The numbered lines of ``run`` but ``member``'s own."""
    return [(first_seq + i, d) for i, (_, d, exclude) in enumerate(run) if exclude is not member]


@dataclass(frozen=True)
class MixedAudience:
    """Who gets what of a mixed run."""

    #: Every member of any of its snapshots -> its outbox.
    union: dict[object, Any]
    #: Those not in every snapshot, and the run's senders.
    special: set[object]
    #: Per special member, the numbered lines meant for it.
    lines_of: dict[object, Lines]


def mixed_audience(run: list[Item], first_seq: int) -> MixedAudience:
    """The union, the special members and their lines of a mixed ``run``
    (numbered from ``first_seq``)."""
    segments: list[tuple[dict[object, Any], int, int]] = []  # (members, first line, past the last)
    members_of: dict[int, dict[object, Any]] = {}
    start = 0
    for i in range(1, len(run) + 1):
        if i == len(run) or run[i][0] is not run[start][0]:
            targets = run[start][0]
            members = members_of.get(id(targets))
            if members is None:
                members = members_of[id(targets)] = dict(targets)  # C speed
            segments.append((members, start, i))
            start = i
    union: dict[object, Any] = {}
    core: set[object] | None = None
    for members in members_of.values():
        union.update(members)
        if core is None:
            core = set(members)
        else:
            core.intersection_update(members)
    special = union.keys() - (core or set())
    special.update(exclude for _, _, exclude in run if exclude is not None)
    return MixedAudience(union, special, _lines_while_present(special, segments, run, first_seq))


def _lines_while_present(
    special: set[object], segments: list[tuple[dict[object, Any], int, int]], run: list[Item], first_seq: int
) -> dict[object, Lines]:
    """Per member of ``special``, the numbered lines of ``run`` said while it
    was in the room (the snapshot of their segment holds it), but its own:
    one walk over the segments, following who came and went between two
    (set differences at C speed), so the cost is the lines handed out, not
    members times lines."""
    lines_of: dict[object, Lines] = {m: [] for m in special}
    active: set[object] = set()
    previous: dict[object, Any] | None = None
    for members, lo, hi in segments:
        if previous is None:
            active = {m for m in special if m in members}
        elif members is not previous:
            active.difference_update(previous.keys() - members.keys())
            active.update(special.intersection(members.keys() - previous.keys()))
        previous = members
        for i in range(lo, hi):
            _, data, exclude = run[i]
            seq = first_seq + i
            for m in active:
                if m is not exclude:
                    lines_of[m].append((seq, data))
    return lines_of
