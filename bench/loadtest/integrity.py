"""Delivery integrity for the Locust users: lost, duplicated, reordered,
corrupted, per receiver and sender, merged across Locust workers.

Each user's connection gets an :class:`~bench.measure.integrity.IntegrityTracker`
(the swarm's, from the measure package).  Locust users join and leave while
others send, so a receiver counts each sender from the first message it got
from it (:meth:`IntegrityTracker.start_at`), and *lost* means a gap between
the first and the last message it got from that sender: what a receiver that
came and went can be sure of.  Duplicates, reorderings and corruptions count
as in the swarm.  Integrity needs no shared clock, so it holds across hosts.

A worker attaches its current counters (:meth:`Ledger.state`, not a delta:
each report replaces that worker's previous one at the master) to every
``report_to_master``; the master keeps the latest per worker and adds them up
(:func:`merge_states`).
"""

from __future__ import annotations

from typing import TypedDict

from bench.measure.integrity import DUPLICATE, UNREADABLE_SENDER, IntegrityTracker

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


class Ledger:
    """This process's trackers, one per connection (by the user's chat name)."""

    def __init__(self) -> None:
        self.trackers: dict[str, IntegrityTracker] = {}

    def tracker(self, receiver: str) -> IntegrityTracker:
        t = self.trackers.get(receiver)
        if t is None:
            t = self.trackers[receiver] = IntegrityTracker()
        return t

    def delivered(self, receiver: str, sender: int, seq: int) -> bool:
        """One intact probe; False for a duplicate (not a delivery)."""
        t = self.tracker(receiver)
        if not t.knows(sender):
            t.start_at(sender, seq)
        return t.observe(sender, seq) != DUPLICATE

    def corrupted(self, receiver: str, header: tuple[int, int] | None) -> None:
        t = self.tracker(receiver)
        if header is not None and t.knows(header[0]):
            t.observe_corrupt(*header)
        else:
            t.observe_corrupt(header[0] if header else None)

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
        return _totals(pairs, len(self.trackers))


def _totals(pairs: list[PairCounts], receivers: int) -> IntegrityState:
    return IntegrityState(
        lost=sum(p["lost"] for p in pairs),
        duplicated=sum(p["duplicated"] for p in pairs),
        reordered=sum(p["reordered"] for p in pairs),
        corrupted=sum(p["corrupted"] for p in pairs),
        receivers=receivers,
        pairs=pairs,
    )


def merge_states(states: list[IntegrityState]) -> IntegrityState:
    """The workers' latest states added up (each receiver lives in one worker)."""
    pairs = sorted((p for s in states for p in s["pairs"]), key=lambda p: (p["receiver"], p["sender"]))
    return _totals(pairs, sum(s["receivers"] for s in states))


def summary_text(state: IntegrityState) -> str:
    return (
        f"lost={state['lost']} duplicated={state['duplicated']} reordered={state['reordered']} "
        f"corrupted={state['corrupted']} receivers={state['receivers']}"
    )


#: This process's ledger (the users record into it; hdr.FanoutRecorder ships it).
LEDGER = Ledger()
__all__ = ["LEDGER", "REPORT_KEY", "UNREADABLE_SENDER", "IntegrityState", "Ledger", "merge_states", "summary_text"]
