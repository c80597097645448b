"""Per-sender delivery integrity: lost, duplicated, reordered, corrupted.

One :class:`IntegrityTracker` per *receiving* connection.  Every probe a
sender emits carries ``(sender, seq)`` with ``seq`` counting 0, 1, 2, ... per
sender, and a TCP stream through one server thread should deliver them in
that order.  The tracker keeps, per sender, only the next expected sequence
number and the (usually empty) set of *holes* below it, so the common case --
the next message in order -- costs one dict lookup and one store, and memory
does not grow with the number of messages.

Definitions (each message from a sender to this receiver counts once):

``duplicated``  a sequence number arrived again after it had already arrived.
``reordered``   a sequence number arrived after a later one from the same
                sender (it filled a hole); the message is still delivered.
``corrupted``   a line that claims to be a probe but fails its checksum or
                format, or whose chat name is not the name of the sender id it
                carries.  When its ``sender`` and ``seq`` fields can still be
                read, that sequence number counts as *accounted for* (it
                arrived, damaged), so it is not also counted as lost --
                unless that seq is more than :data:`MAX_CORRUPT_SEQ_JUMP`
                ahead of the sender's next one (then the seq field itself is
                taken to be the damage).
``lost``        a sequence number the sender sent (per the final ``sent``
                counts given to :meth:`IntegrityTracker.finish`) that never
                arrived, whole or corrupted.

So a stream with one message missing, one arriving twice, one swapped with
its successor and one damaged reports exactly ``lost=1, duplicated=1,
reordered=1, corrupted=1``.

**A receiver that joins mid-stream** (churn: :mod:`bench.swarm.churn`) is
owed a stream only from a **floor** on (:meth:`IntegrityTracker.expect_from`:
the first sequence number sent after the server confirmed its join).
Messages below the floor may still arrive (they were in the server's hands
when it joined): they are tracked like any other -- a repeat is a
duplicate, one arriving after a later one reordered -- but the numbers
below the floor that never came are not holes, and a first arrival far
above 0 opens holes only from the floor on, so the state stays as small as
the gaps after the floor.  :meth:`IntegrityTracker.window` then counts what
one membership was owed (``[floor, hi)``), lost, left in flight at its
leave (``[hi, end)``) and received.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

#: A damaged probe whose readable seq lies further than this beyond the
#: sender's next expected one counts as corrupted with an unreadable header.
MAX_CORRUPT_SEQ_JUMP = 1 << 16

#: Return values of :meth:`IntegrityTracker.observe`.
IN_ORDER = 0
REORDERED = 1
DUPLICATE = 2

#: The sender key of :attr:`IntegrityTracker.faults_by_sender` for damaged
#: probes whose sender field cannot be read.
UNREADABLE_SENDER = -1
_DUPLICATED_AT, _REORDERED_AT, _CORRUPTED_AT = 0, 1, 2


@dataclass(slots=True)
class IntegrityCounts:
    """The four counters, addable across receivers and workers."""

    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    corrupted: int = 0

    def add(self, other: IntegrityCounts) -> None:
        self.lost += other.lost
        self.duplicated += other.duplicated
        self.reordered += other.reordered
        self.corrupted += other.corrupted

    @property
    def faults(self) -> int:
        return self.lost + self.duplicated + self.reordered + self.corrupted

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, int]) -> IntegrityCounts:
        return cls(
            lost=int(data.get("lost", 0)),
            duplicated=int(data.get("duplicated", 0)),
            reordered=int(data.get("reordered", 0)),
            corrupted=int(data.get("corrupted", 0)),
        )


class IntegrityTracker:
    """What one receiver got from every sender.  See the module docstring."""

    __slots__ = (
        "_first",
        "_floor",
        "_holes",
        "_next",
        "corrupted",
        "duplicated",
        "faults_by_sender",
        "reordered",
        "sink",
    )

    def __init__(self, sink: list[int] | None = None) -> None:
        #: where every fault is counted as well, by kind (duplicated, reordered,
        #: corrupted): shared by a process's receivers, so the recorder can
        #: count each fault in the interval it was seen in (bench.measure.intervals)
        self.sink = sink
        #: sender -> next expected seq (one more than the highest seen).
        self._next: dict[int, int] = {}
        #: sender -> seqs below ``_next`` not seen yet; only senders with holes.
        self._holes: dict[int, set[int]] = {}
        #: a receiver that joined mid-stream: sender -> the first seq it is
        #: owed (None: owed every message from 0, the plain case)
        self._floor: dict[int, int] | None = None
        #: with floors: sender -> the lowest seq its state covers (absent: 0)
        self._first: dict[int, int] = {}
        self.duplicated = 0
        self.reordered = 0
        self.corrupted = 0
        #: sender -> [duplicated, reordered, corrupted] from that sender (only
        #: senders with a fault; :data:`UNREADABLE_SENDER` for probes whose
        #: header is unreadable).  Kept on the fault branches only, so the
        #: in-order path costs nothing more.
        self.faults_by_sender: dict[int, list[int]] = {}

    def _fault(self, sender: int, kind: int) -> None:
        if self.sink is not None:
            self.sink[kind] += 1
        counts = self.faults_by_sender.get(sender)
        if counts is None:
            counts = self.faults_by_sender[sender] = [0, 0, 0]
        counts[kind] += 1

    def observe(self, sender: int, seq: int) -> int:
        """Account one intact probe.  Returns :data:`IN_ORDER`,
        :data:`REORDERED` (counts as delivered) or :data:`DUPLICATE` (does not)."""
        expected = self._next.get(sender, 0)
        if seq == expected:
            self._next[sender] = seq + 1
            return IN_ORDER
        if seq > expected:
            self._skip(sender, expected, seq)
            return IN_ORDER
        holes = self._holes.get(sender)
        if holes is not None and seq in holes:
            holes.discard(seq)
            if not holes:
                del self._holes[sender]
            self.reordered += 1
            self._fault(sender, _REORDERED_AT)
            return REORDERED
        if seq < self._first.get(sender, 0):  # below all it saw, and never seen: late, not repeated
            self._below(sender, seq)
            self.reordered += 1
            self._fault(sender, _REORDERED_AT)
            return REORDERED
        self.duplicated += 1
        self._fault(sender, _DUPLICATED_AT)
        return DUPLICATE

    def observe_block(self, senders: Any, seqs: Any) -> Any:
        """:meth:`observe` for many intact probes at once (numpy int64 arrays,
        in arrival order).  Returns ``None`` when every probe came in order
        (the common case: each sender's sequence numbers continue exactly
        where they left off), else a boolean array: ``False`` for the
        duplicates (not delivered).  Same counters and state as calling
        :meth:`observe` for each, in order: the in-order case is checked per
        sender with array operations and a dict access per distinct sender;
        anything else is replayed one by one."""
        import numpy as np

        n = len(senders)
        if n == 0:
            return None
        keys = senders
        if n > 64 and int(senders.min()) >= 0 and int(senders.max()) < 1 << 15:
            keys = senders.astype(np.int16)  # numpy's stable sort of 16-bit keys is a radix sort
        order = np.argsort(keys, kind="stable")
        by_sender = senders[order]
        seq_sorted = seqs[order]
        first = np.empty(n, dtype=bool)
        first[0] = True
        np.not_equal(by_sender[1:], by_sender[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        distinct = by_sender[starts].tolist()
        nxt = self._next
        expected = np.empty(n, dtype=np.int64)
        expected[1:] = seq_sorted[:-1] + 1
        expected[starts] = [nxt.get(s, 0) for s in distinct]
        if (expected == seq_sorted).all():
            lasts = np.empty_like(starts)
            lasts[:-1] = starts[1:] - 1
            lasts[-1] = n - 1
            nxt.update(zip(distinct, (seq_sorted[lasts] + 1).tolist(), strict=True))
            return None
        observe = self.observe
        return np.fromiter(
            (observe(s, q) != DUPLICATE for s, q in zip(senders.tolist(), seqs.tolist(), strict=True)),
            dtype=bool,
            count=n,
        )

    def expect_from(self, sender: int, seq: int) -> None:
        """This receiver is owed ``sender``'s messages from ``seq`` on (it
        joined mid-stream; see the module docstring).  Call before the first
        observe of that sender."""
        if self._floor is None:
            self._floor = {}
        self._floor[sender] = seq

    def floor(self, sender: int) -> int:
        """The first seq owed from ``sender`` (0 unless :meth:`expect_from` said)."""
        return self._floor.get(sender, 0) if self._floor else 0

    def start_at(self, sender: int, seq: int) -> None:
        """This receiver joined while ``sender`` was already sending: count
        its messages from ``seq`` on (call before the first observe of that
        sender; the Locust users, whose users join and leave mid-stream)."""
        self._next.setdefault(sender, seq)

    def knows(self, sender: int) -> bool:
        """Whether anything from ``sender`` arrived yet."""
        return sender in self._next

    def next_seq(self, sender: int) -> int:
        """One more than the highest sequence number from ``sender`` seen (0: none yet)."""
        return self._next.get(sender, 0)

    def gaps(self) -> dict[int, int]:
        """Per sender, the messages missing *between* the first and the last
        that arrived (the loss a receiver that came and went can be sure of)."""
        return {sender: len(holes) for sender, holes in self._holes.items() if holes}

    def _skip(self, sender: int, expected: int, seq: int) -> None:
        """``seq`` came ahead of ``expected``: the numbers between are holes
        (with a floor, a first arrival's numbers below the floor are not)."""
        if self._floor is not None and sender not in self._next:
            floor = self._floor.get(sender, 0)
            if seq <= floor:  # a first arrival at or below its floor: nothing before it is owed
                self._first[sender] = seq
                self._next[sender] = seq + 1
                return
            expected = floor  # the numbers below the floor are not holes
            if floor:
                self._first[sender] = floor
        holes = self._holes.get(sender)
        if holes is None:
            holes = self._holes[sender] = set()
        holes.update(range(expected, seq))
        self._next[sender] = seq + 1

    def _below(self, sender: int, seq: int) -> None:
        """``seq`` arrived below the lowest seq the state covers (a receiver
        with a floor): the numbers between become holes, ``seq`` the lowest."""
        first = self._first.get(sender, 0)
        if seq + 1 < first:
            holes = self._holes.get(sender)
            if holes is None:
                holes = self._holes[sender] = set()
            holes.update(range(seq + 1, first))
        self._first[sender] = seq

    def observe_corrupt(self, sender: int | None = None, seq: int | None = None) -> None:
        """Account one damaged probe; ``sender``/``seq`` when still readable."""
        self.corrupted += 1
        self._fault(UNREADABLE_SENDER if sender is None else sender, _CORRUPTED_AT)
        if sender is None or seq is None or seq < 0:
            return
        expected = self._next.get(sender, 0)
        if seq - expected > MAX_CORRUPT_SEQ_JUMP:
            # The damage is most likely in the seq field itself (a space turned
            # into a digit makes it enormous): treat the header as unreadable
            # rather than open millions of holes.
            return
        if seq > expected:
            self._skip(sender, expected, seq)
            return
        if seq == expected:
            self._next[sender] = seq + 1
            return
        holes = self._holes.get(sender)
        if holes is not None and seq in holes:
            holes.discard(seq)
            if not holes:
                del self._holes[sender]
        elif seq < self._first.get(sender, 0):
            self._below(sender, seq)

    def lost(self, sent: Mapping[int, int], skip_sender: int | None = None) -> int:
        """Messages sent that never arrived.  ``sent`` maps every sender to
        the number of messages it sent; ``skip_sender`` is this receiver's own
        sender id, if it is one (it does not receive its own messages)."""
        return sum(self.lost_by_sender(sent, skip_sender).values())

    def lost_by_sender(self, sent: Mapping[int, int], skip_sender: int | None = None) -> dict[int, int]:
        """:meth:`lost` per sender (only senders with a loss)."""
        out: dict[int, int] = {}
        for sender, count in sent.items():
            if sender == skip_sender:
                continue
            floor = self.floor(sender)
            seen_up_to = max(self._next.get(sender, 0), floor)
            holes = self._holes.get(sender)
            lost = sum(1 for seq in holes if floor <= seq < count) if holes else 0
            if count > seen_up_to:
                lost += count - seen_up_to
            if lost:
                out[sender] = lost
        return out

    def missing(self, sent: Mapping[int, int], skip_sender: int | None = None) -> dict[int, tuple[list[int], range]]:
        """Per sender with a loss, the lost sequence numbers: the holes (below
        its ``sent`` count) and the range it never reached.  Together they are
        :meth:`lost_by_sender`'s counts, by message (to say when each was due)."""
        out: dict[int, tuple[list[int], range]] = {}
        for sender, count in sent.items():
            if sender == skip_sender:
                continue
            floor = self.floor(sender)
            holes = self._holes.get(sender)
            below = sorted(seq for seq in holes if floor <= seq < count) if holes else []
            tail = range(max(self._next.get(sender, 0), floor), count)
            if below or tail:
                out[sender] = (below, tail)
        return out

    # -- a membership's window (churn) ------------------------------------------------

    def _missing_in(self, sender: int, lo: int, hi: int) -> int:
        """Seqs in [lo, hi) that did not arrive."""
        if hi <= lo:
            return 0
        nxt = self._next.get(sender)
        if nxt is None:
            return hi - lo
        first = self._first.get(sender, 0)
        holes = self._holes.get(sender)
        n = sum(1 for seq in holes if lo <= seq < hi) if holes else 0
        n += max(0, min(hi, first) - lo)  # below what the state covers: never seen
        n += max(0, hi - max(lo, nxt))  # at or past the highest seen
        return n

    def _arrived_from(self, sender: int, lo: int) -> int:
        """Seqs at or above ``lo`` that arrived (duplicates once)."""
        nxt = self._next.get(sender)
        if nxt is None:
            return 0
        start = max(lo, self._first.get(sender, 0))
        holes = self._holes.get(sender)
        gaps = sum(1 for seq in holes if seq >= start) if holes else 0
        return max(0, nxt - start - gaps)

    def received(self) -> int:
        """Intact first arrivals from every sender (a duplicate counts once)."""
        return sum(self._arrived_from(sender, 0) for sender in self._next)

    def window(self, sender: int, hi: int, end: int, measured_from: int = 0) -> Window:
        """What this receiver was owed by ``sender`` from its floor to ``hi``,
        and left in flight in ``[hi, end)`` (its leave; ``hi == end``: it
        stayed to the end, ``end`` then the messages sent);
        ``measured_from``: the sender's first measured seq."""
        lo = self._floor.get(sender, 0) if self._floor else 0
        lo_m = lo if lo > measured_from else measured_from
        owed = hi - lo if hi > lo else 0
        owed_m = hi - lo_m if hi > lo_m else 0
        top = lo if lo > hi else hi
        nxt = self._next.get(sender)
        if nxt is None:  # nothing arrived
            return Window(owed, owed, end - top if end > top else 0, 0, owed_m, owed_m, 0)
        if sender in self._holes:
            missing = self._missing_in
            return Window(
                owed=owed,
                lost=missing(sender, lo, hi),
                at_leave=missing(sender, top, end),
                arrived=self._arrived_from(sender, 0),
                owed_measured=owed_m,
                lost_measured=missing(sender, lo_m, hi),
                arrived_measured=self._arrived_from(sender, measured_from),
            )
        # no holes: what arrived is exactly [first, nxt)
        first = self._first.get(sender, 0) if self._first else 0

        def arrived_in(a: int, b: int) -> int:
            a = a if a > first else first
            b = b if b < nxt else nxt
            return b - a if b > a else 0

        return Window(
            owed=owed,
            lost=owed - arrived_in(lo, hi),
            at_leave=(end - top if end > top else 0) - arrived_in(top, end),
            arrived=nxt - first,
            owed_measured=owed_m,
            lost_measured=owed_m - arrived_in(lo_m, hi),
            arrived_measured=arrived_in(measured_from, nxt),
        )

    def missing_between(self, sender: int, lo: int, hi: int) -> tuple[list[int], list[range]]:
        """The seqs in [lo, hi) that did not arrive: single ones (holes) and
        ranges (never reached, or below what arrived): to say when each was due."""
        if hi <= lo:
            return [], []
        nxt = self._next.get(sender)
        if nxt is None:
            return [], [range(lo, hi)]
        first = self._first.get(sender, 0)
        holes = self._holes.get(sender)
        singles = sorted(seq for seq in holes if lo <= seq < hi) if holes else []
        ranges = [r for r in (range(lo, min(hi, first)), range(max(lo, nxt), hi)) if r]
        return singles, ranges

    def finish_by_sender(self, sent: Mapping[int, int], skip_sender: int | None = None) -> dict[int, IntegrityCounts]:
        """The four counters per sender, only for senders with a fault: what
        this receiver got wrong from whom.  They add up to :meth:`finish`."""
        out = {sender: IntegrityCounts(lost=lost) for sender, lost in self.lost_by_sender(sent, skip_sender).items()}
        for sender, (dup, reord, corrupt) in self.faults_by_sender.items():
            counts = out.setdefault(sender, IntegrityCounts())
            counts.duplicated, counts.reordered, counts.corrupted = dup, reord, corrupt
        return out

    def finish(self, sent: Mapping[int, int], skip_sender: int | None = None) -> IntegrityCounts:
        return IntegrityCounts(
            lost=self.lost(sent, skip_sender),
            duplicated=self.duplicated,
            reordered=self.reordered,
            corrupted=self.corrupted,
        )


@dataclass(slots=True)
class Window:
    """One stream's share of one membership (a connection that was in from
    a floor to its leave): what it was owed, lost, left in flight, received.
    Addable across streams, connections and workers."""

    owed: int = 0  #: messages in [floor, hi): sent while it was in, long enough before its leave
    lost: int = 0  #: of those, never arrived (whole or damaged)
    at_leave: int = 0  #: messages in [hi, end) that did not arrive: in flight when it left, not lost
    arrived: int = 0  #: intact first arrivals, owed or not (boundary ones included)
    owed_measured: int = 0  #: the same, of the measured messages only (past the warm-up)
    lost_measured: int = 0
    arrived_measured: int = 0

    def add(self, other: Window) -> None:
        self.owed += other.owed
        self.lost += other.lost
        self.at_leave += other.at_leave
        self.arrived += other.arrived
        self.owed_measured += other.owed_measured
        self.lost_measured += other.lost_measured
        self.arrived_measured += other.arrived_measured

    @property
    def boundary(self) -> int:
        """Arrivals that were not owed: sent before the join was confirmed
        or within the grace before the leave (not faults)."""
        return self.arrived - (self.owed - self.lost)


def total(counts: Iterable[IntegrityCounts]) -> IntegrityCounts:
    out = IntegrityCounts()
    for c in counts:
        out.add(c)
    return out
