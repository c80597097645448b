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

    __slots__ = ("_holes", "_next", "corrupted", "duplicated", "faults_by_sender", "reordered", "sink")

    def __init__(self, sink: list[int] | None = None) -> None:
        #: where every fault is counted as well, by kind (duplicated, reordered,
        #: corrupted): shared by a process's receivers, so the recorder can
        #: count each fault in the interval it was seen in (bench.measure.intervals)
        self.sink = sink
        #: sender -> next expected seq (one more than the highest seen).
        self._next: dict[int, int] = {}
        #: sender -> seqs below ``_next`` not seen yet; only senders with holes.
        self._holes: dict[int, set[int]] = {}
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
        """``seq`` came ahead of ``expected``: the numbers between are holes."""
        holes = self._holes.get(sender)
        if holes is None:
            holes = self._holes[sender] = set()
        holes.update(range(expected, seq))
        self._next[sender] = seq + 1

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
        if holes is not None:
            holes.discard(seq)
            if not holes:
                del self._holes[sender]

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
            seen_up_to = self._next.get(sender, 0)
            holes = self._holes.get(sender)
            lost = sum(1 for seq in holes if seq < count) if holes else 0
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
            holes = self._holes.get(sender)
            below = sorted(seq for seq in holes if seq < count) if holes else []
            tail = range(self._next.get(sender, 0), count)
            if below or tail:
                out[sender] = (below, tail)
        return out

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


def total(counts: Iterable[IntegrityCounts]) -> IntegrityCounts:
    out = IntegrityCounts()
    for c in counts:
        out.add(c)
    return out
