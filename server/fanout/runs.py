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

from collections.abc import Iterator, Sequence
from collections.abc import Set as AbstractSet
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


#: A run's senders when there is one line: its sender is ``only``, skipped by identity.
NOBODY: frozenset[object] = frozenset()


def skips(run: list[Item], special: set[object] | None) -> tuple[object, AbstractSet[object]]:
    """Who a run's fan-out does not simply give its block: ``only``, a
    one-line run's sender (compared by identity), and ``skipping``, the
    members that get some of the run's lines or none (a mixed run's
    ``special``, or the senders of a run of several lines)."""
    if special is not None:
        return None, special
    if len(run) == 1:
        return run[0][2], NOBODY
    return None, {exclude for _, _, exclude in run if exclude is not None}


def joined(lines: Lines) -> bytes:
    """Numbered lines as one block, for one send."""
    return lines[0][1] if len(lines) == 1 else b"".join([d for _, d in lines])


#: When a member came (True) and went (False) over a mixed run: (line index,
#: present from it on), in order.
Toggles = list[tuple[int, bool]]
#: A member there for the whole run (shared: never appended to).
ALWAYS: Sequence[tuple[int, bool]] = ((0, True),)


@dataclass(frozen=True)
class MixedAudience:
    """Who gets what of a mixed run."""

    #: Every member of any of its snapshots, as (member, outbox) pairs, once each.
    union: tuple[tuple[object, Any], ...]
    #: Those not in every snapshot, and the run's senders.
    special: set[object]
    #: Per special member, the numbered lines meant for it.
    lines_of: dict[object, Lines]


def mixed_audience(run: list[Item], first_seq: int) -> MixedAudience:
    """The union, the special members and their lines of a mixed ``run``
    (numbered from ``first_seq``).  The cost is the joins and parts in it
    and the lines handed out, not the room's size times its snapshots,
    where the snapshots say what changed (:class:`server.rooms.Snapshot`)."""
    segments = [(targets, i) for i, (targets, _, _) in enumerate(run) if i == 0 or targets is not run[i - 1][0]]
    changes = _changes_said(segments)
    if changes is None:
        changes = _changes_found(segments)
    extra: dict[object, Any] = {}  # who came in after the first snapshot -> its pair
    toggles: dict[object, Toggles] = {}
    for at, member, pair in changes:
        got = toggles.get(member)
        if got is None:
            # There at the start exactly when the first thing it does is leave.
            got = toggles[member] = [] if pair is not None else [(0, True)]
            if pair is not None:
                extra[member] = pair
        got.append((at, pair is not None))
    special = set(toggles)
    special.update(exclude for _, _, exclude in run if exclude is not None)
    lines_of = {m: _lines_while_present(m, toggles.get(m, ALWAYS), run, first_seq) for m in special}
    first = segments[0][0]
    return MixedAudience(first + tuple(extra.values()) if extra else first, special, lines_of)


#: One join (pair: the member's (member, outbox)) or part (pair None) taking
#: effect at a line of a mixed run: (line index, member, pair).
Changes = list[tuple[int, object, Any]]


def _changes_said(segments: list[tuple[BroadcastTargets, int]]) -> Changes | None:
    """The joins and parts between the segments' snapshots, read from the
    snapshots themselves (``version``, ``change``); None when one of them
    does not say, or a snapshot between two is missing from the run."""
    changes: Changes = []
    version = getattr(segments[0][0], "version", None)
    for targets, at in segments[1:]:
        change = getattr(targets, "change", None)
        if change is None or version is None or getattr(targets, "version", None) != version + 1:
            return None
        version += 1
        changes.append((at, change[0], change[1]))
    return changes


def _changes_found(segments: list[tuple[BroadcastTargets, int]]) -> Changes:
    """The same, found by comparing consecutive snapshots (set differences at
    C speed, a copy of each snapshot)."""
    changes: Changes = []
    previous = dict(segments[0][0])
    for targets, at in segments[1:]:
        members = dict(targets)
        changes.extend((at, m, None) for m in previous.keys() - members.keys())
        changes.extend((at, m, (m, members[m])) for m in members.keys() - previous.keys())
        previous = members
    return changes


def _lines_while_present(member: object, toggles: Sequence[tuple[int, bool]], run: list[Item], first_seq: int) -> Lines:
    """The numbered lines of ``run`` said while ``member`` was in the room
    (``toggles``), but its own."""
    lines: Lines = []
    for k, (at, present) in enumerate(toggles):
        if present:
            stop = toggles[k + 1][0] if k + 1 < len(toggles) else len(run)
            lines += [(first_seq + i, run[i][1]) for i in range(at, stop) if run[i][2] is not member]
    return lines
