"""The one labelling function: which label a delivery is measured under.

A **label** names the slice of a run a delivery belongs to, one value per
**dimension** that applies to the run: ``path=cross`` (a cluster: sender and
receiver on different nodes), and, as the workload grows, the room's size,
the transport, whether the receiver stayed for the whole run (``membership``),
the clock a latency was corrected by.  (A storm's before/during/after is time,
not a label: it comes from the interval series, :mod:`bench.swarm.churndoc`.)
Every label's deliveries get a histogram and counters of their own
(:mod:`bench.measure.labelled`), merged exactly across workers, carried as
one field into the result document and the report; the run's overall
figures are their merge.

A dimension is a function of the plan, the delivery's stream and its
receiver (so a worker computes it once per (receiver, stream), not per
delivery), returning its value or ``None`` where it does not apply to the
run.  **Adding a dimension** is one entry in :data:`DIMENSIONS` plus, where
it needs a fact the plan does not hold yet, that fact in
:mod:`bench.workload.plan`.  Nothing else changes: the recorder, the
messages between processes, the merge, the schema and the report handle
labels as data.

A label key is the text ``dim=value,dim=value`` in :data:`DIMENSIONS`'s
order (``""`` when no dimension applies: the run has one label).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping

from bench.workload.plan import Client, Plan, Stream

#: A dimension: (plan, stream, receiver) -> its value, or None where it does not apply.
Dimension = Callable[[Plan, Stream, Client], "str | None"]


def _path(plan: Plan, stream: Stream, receiver: Client) -> str | None:
    """A cluster's path: ``same`` node as the sender, or ``cross``."""
    if plan.nodes < 2:
        return None
    return "same" if plan.clients[stream.sender].node == receiver.node else "cross"


def _clock(plan: Plan, stream: Stream, receiver: Client) -> str | None:
    """The clock a latency was measured on: ``same`` (sender and receiver
    stamp on one monotonic clock) or ``corrected`` (the sender's stamp moved
    onto the receiver's clock by the two clocks' measured offsets; the result
    gives the error bound)."""
    if plan.clocks < 2:
        return None
    return "same" if plan.clients[stream.sender].clock == receiver.clock else "corrected"


def size_bucket(size: int) -> str:
    """A room size's decade: ``1-9``, ``10-99``, ``100-999``, ... (these
    sort as text in size order)."""
    low = 1
    while size >= low * 10:
        low *= 10
    return f"{low}-{low * 10 - 1}"


def _room_size(plan: Plan, stream: Stream, receiver: Client) -> str | None:
    """The size of the room a delivery was said in: its receiving members,
    in decades (``1-9``, ``10-99``, ``100-999``, ...); runs of more than one room."""
    if len(plan.rooms) < 2:
        return None
    return size_bucket(len(plan.rooms[stream.room].members))


def _membership(plan: Plan, stream: Stream, receiver: Client) -> str | None:
    """Whether the receiver stays for the whole run (``steady``) or its seat
    leaves and comes back (``churned``: --churn, --storm); runs with churn or a storm.
    The steady receivers are read first, as soon as they have bytes, so their
    kernel stamps are exact; a churned seat is read in the worker's pass over
    every connection, and under heavy notice traffic its read can gather later
    segments and carry their stamp (the harness read lag says how late)."""
    membership = plan.membership
    if membership is None or not membership.churned:
        return None
    return "steady" if membership.steady(receiver.cid) else "churned"


def _transport(plan: Plan, stream: Stream, receiver: Client) -> str | None:
    """How the receiver reaches the target: ``tls`` or ``plain`` (the bytes
    the server encrypts once per recipient); runs without TLS leave it out."""
    if plan.transports == {"plain"}:
        return None
    return receiver.transport


#: The label dimensions, in the order a key lists them.
DIMENSIONS: dict[str, Dimension] = {
    "path": _path,
    "clock": _clock,
    "room_size": _room_size,
    "membership": _membership,
    "transport": _transport,
}


def label_key(plan: Plan, sid: int, cid: int) -> str:
    """The label of a delivery of stream ``sid`` to receiver ``cid``."""
    stream, receiver = plan.streams[sid], plan.clients[cid]
    parts = []
    for name, dimension in DIMENSIONS.items():
        value = dimension(plan, stream, receiver)
        if value is not None:
            parts.append(f"{name}={value}")
    return ",".join(parts)


def label_values(key: str) -> dict[str, str]:
    """``"path=cross,room=big"`` -> ``{"path": "cross", "room": "big"}``."""
    if not key:
        return {}
    return dict(part.split("=", 1) for part in key.split(","))


def routes(plan: Plan, receivers: Iterable[int]) -> tuple[list[str], dict[int, dict[int, int]]]:
    """For a worker's ``receivers``: the label keys they can see (index ->
    key) and, per receiver, stream id -> the index of its deliveries' label.
    With one label for everything (no dimension applies) and one room the
    routes are empty: every delivery has label 0, ``""``; with several rooms
    they are kept even for one label, so a delivery of a stream the
    receiver does not hear is counted as a stray."""
    keys: list[str] = []
    index: dict[str, int] = {}
    out: dict[int, dict[int, int]] = {}
    for cid in receivers:
        route = out[cid] = {}
        for sid in plan.heard_by(cid):
            key = label_key(plan, sid, cid)
            at = index.get(key)
            if at is None:
                at = index[key] = len(keys)
                keys.append(key)
            route[sid] = at
    if len(keys) <= 1 and len(plan.rooms) <= 1:
        return [keys[0] if keys else ""], {}
    return keys, out


def expected_by_label(plan: Plan, counts: Mapping[int, int], present: Collection[int]) -> dict[str, int]:
    """Deliveries owed per label for ``counts`` (stream id -> messages) to
    the ``present`` receivers: the plan's audience, labelled."""
    out: Counter[str] = Counter()
    for sid, count in counts.items():
        if not count or sid not in plan.streams:
            continue
        for cid in plan.audience(sid, present):
            out[label_key(plan, sid, cid)] += count
    return dict(out)
