"""Delivery integrity for the Locust users: lost, duplicated, reordered,
corrupted, per receiver and sender, merged across Locust workers.

Each user's connection gets a :class:`JoiningTracker`: the swarm's
:class:`~bench.measure.integrity.IntegrityTracker`, fed by the same recorder
(:mod:`bench.loadtest.receive`).  Locust users join and leave while others
send, so a receiver counts each sender from the first message it got from it
(:meth:`IntegrityTracker.start_at`), and *lost* means a gap between the first
and the last message it got from that sender: what a receiver that came and
went can be sure of.  Duplicates, reorderings and corruptions count as in the
swarm.  Integrity needs no shared clock, so it holds across hosts.

A worker attaches its current counters (:meth:`Ledger.state`, not a delta:
each report replaces that worker's previous one at the master) to every
``report_to_master``; the master keeps the latest per worker and adds them up
(:func:`merge_states`).
"""

from __future__ import annotations

from typing import TypedDict

from bench.measure.integrity import UNREADABLE_SENDER, IntegrityTracker

#: Key under which a worker attaches its integrity counters to a stats report.
REPORT_KEY = "chatbench_integrity"


class PairCounts(TypedDict):
    receiver: str
    sender: int
    lost: int
    duplicated: int
    reordered: int
    corrupted: int


class IntegrityState(TypedDict):
    """The counters of one process: totals and every (receiver, sender) pair with a fault."""

    lost: int
    duplicated: int
    reordered: int
    corrupted: int
    receivers: int
    pairs: list[PairCounts]
    #: per receiver (user name): the messages that arrived, whole or damaged,
    #: counting each sender from its first one (duplicates not counted)
    received: dict[str, int]


class JoiningTracker(IntegrityTracker):
    """An integrity tracker for a receiver that joined mid-stream: each
    sender is counted from the first intact message that arrives from it
    (:meth:`IntegrityTracker.start_at`), not from sequence number 0.  (The
    recorder's in-order test handles a sender's message 0 inline; any other
    first message comes here.)  A damaged message from a sender not heard
    yet counts as corrupted, but its sequence number does not start the
    sender: the damage may be in that very field."""

    __slots__ = ("starts",)

    def __init__(self) -> None:
        super().__init__()
        self.starts: dict[int, int] = {}  #: sender -> the first seq counted (absent: 0)

    def start_at(self, sender: int, seq: int) -> None:
        if sender not in self._next:
            self.starts[sender] = seq
        super().start_at(sender, seq)

    def observe(self, sender: int, seq: int) -> int:
        if sender not in self._next:
            self.start_at(sender, seq)
        return super().observe(sender, seq)

    def received(self) -> int:
        """Messages that arrived from every sender, whole or damaged, from
        the first one counted on (the span seen, less its holes)."""
        starts, holes = self.starts, self._holes
        return sum(n - starts.get(s, 0) - len(holes.get(s, ())) for s, n in self._next.items())

    def observe_corrupt(self, sender: int | None = None, seq: int | None = None) -> None:
        if sender is not None and sender not in self._next:
            seq = None
        super().observe_corrupt(sender, seq)


class Ledger:
    """This process's trackers, one per connection (by the user's chat name)."""

    def __init__(self) -> None:
        self.trackers: dict[str, JoiningTracker] = {}

    def tracker(self, receiver: str) -> JoiningTracker:
        t = self.trackers.get(receiver)
        if t is None:
            t = self.trackers[receiver] = JoiningTracker()
        return t

    def reset(self) -> None:
        self.trackers = {}

    def state(self) -> IntegrityState:
        pairs: list[PairCounts] = []
        for receiver, t in sorted(self.trackers.items()):
            counts: dict[int, list[int]] = {s: [n, 0, 0, 0] for s, n in t.gaps().items()}
            for sender, (dup, reord, corrupt) in t.faults_by_sender.items():
                c = counts.setdefault(sender, [0, 0, 0, 0])
                c[1:] = [dup, reord, corrupt]
            pairs += [
                PairCounts(receiver=receiver, sender=s, lost=c[0], duplicated=c[1], reordered=c[2], corrupted=c[3])
                for s, c in sorted(counts.items())
            ]
        received = {receiver: t.received() for receiver, t in sorted(self.trackers.items())}
        return _totals(pairs, len(self.trackers), received)


def _totals(pairs: list[PairCounts], receivers: int, received: dict[str, int]) -> IntegrityState:
    return IntegrityState(
        lost=sum(p["lost"] for p in pairs),
        duplicated=sum(p["duplicated"] for p in pairs),
        reordered=sum(p["reordered"] for p in pairs),
        corrupted=sum(p["corrupted"] for p in pairs),
        receivers=receivers,
        pairs=pairs,
        received=received,
    )


def merge_states(states: list[IntegrityState]) -> IntegrityState:
    """The workers' latest states added up (each receiver lives in one worker)."""
    pairs = sorted((p for s in states for p in s["pairs"]), key=lambda p: (p["receiver"], p["sender"]))
    received = {name: n for s in states for name, n in s.get("received", {}).items()}
    return _totals(pairs, sum(s["receivers"] for s in states), dict(sorted(received.items())))


def summary_text(state: IntegrityState) -> str:
    return (
        f"lost={state['lost']} duplicated={state['duplicated']} reordered={state['reordered']} "
        f"corrupted={state['corrupted']} receivers={state['receivers']}"
    )


#: This process's ledger (the users record into it; hdr.FanoutRecorder ships it).
LEDGER = Ledger()
__all__ = ["LEDGER", "REPORT_KEY", "UNREADABLE_SENDER", "IntegrityState", "Ledger", "merge_states", "summary_text"]
