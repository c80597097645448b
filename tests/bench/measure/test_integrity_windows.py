"""A receiver that joins mid-stream: the tracker's floors and membership
windows against a brute-force count of the same arrivals."""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.measure.integrity import IntegrityTracker, Window

SENDER = 7


@dataclass
class BruteForce:
    """Every arrival kept: the definitions, checked the plain way."""

    seen: set[int] = field(default_factory=set)
    highest: int = -1
    duplicated: int = 0
    reordered: int = 0

    def observe(self, seq: int) -> None:
        if seq in self.seen:
            self.duplicated += 1
            return
        if seq < self.highest:
            self.reordered += 1
        self.seen.add(seq)
        self.highest = max(self.highest, seq)

    def window(self, lo: int, hi: int, end: int, measured_from: int) -> Window:
        def missing(a: int, b: int) -> int:
            return sum(1 for s in range(a, b) if s not in self.seen)

        lo_m = max(lo, measured_from)
        return Window(
            owed=max(0, hi - lo),
            lost=missing(lo, hi),
            at_leave=missing(max(lo, hi), end),
            arrived=len(self.seen),
            owed_measured=max(0, hi - lo_m),
            lost_measured=missing(lo_m, hi),
            arrived_measured=sum(1 for s in self.seen if s >= measured_from),
        )


arrivals = st.lists(st.integers(min_value=0, max_value=60), max_size=50)


@settings(max_examples=400, deadline=None)
@given(
    floor=st.integers(min_value=0, max_value=40),
    seqs=arrivals,
    hi=st.integers(min_value=0, max_value=70),
    extra=st.integers(min_value=0, max_value=10),
    measured_from=st.integers(min_value=0, max_value=30),
)
def test_a_window_counts_what_a_brute_force_count_says(
    floor: int, seqs: list[int], hi: int, extra: int, measured_from: int
) -> None:
    tracker = IntegrityTracker()
    tracker.expect_from(SENDER, floor)
    brute = BruteForce()
    for seq in seqs:
        tracker.observe(SENDER, seq)
        brute.observe(seq)
    assert (tracker.duplicated, tracker.reordered) == (brute.duplicated, brute.reordered)
    end = hi + extra
    assert tracker.window(SENDER, hi, end, measured_from) == brute.window(floor, hi, end, measured_from)
    assert tracker.received() == len(brute.seen)
    # what lost_by_sender / missing say for the membership that stayed to the end (hi == end == sent)
    lost = sum(1 for s in range(floor, end) if s not in brute.seen)
    assert tracker.lost_by_sender({SENDER: end}).get(SENDER, 0) == lost
    holes, tail = tracker.missing({SENDER: end}).get(SENDER, ([], range(0)))
    assert len(holes) + len(tail) == lost
    singles, ranges = tracker.missing_between(SENDER, floor, hi)
    assert sorted([*singles, *(s for r in ranges for s in r)]) == [s for s in range(floor, hi) if s not in brute.seen]


@given(seqs=arrivals)
def test_without_a_floor_the_tracker_is_what_it_was(seqs: list[int]) -> None:
    """No floor: a first arrival past 0 leaves holes from 0 (what it always did)."""
    tracker = IntegrityTracker()
    brute = BruteForce()
    for seq in seqs:
        tracker.observe(SENDER, seq)
        brute.observe(seq)
    assert (tracker.duplicated, tracker.reordered) == (brute.duplicated, brute.reordered)
    sent = 61
    assert tracker.lost({SENDER: sent}) == sum(1 for s in range(sent) if s not in brute.seen)
    assert tracker.window(SENDER, sent, sent) == brute.window(0, sent, sent, 0)


def test_a_late_joiner_keeps_no_state_for_what_came_before_its_floor() -> None:
    """Joining at seq 100,000 of a stream costs no hole set of 100,000."""
    tracker = IntegrityTracker()
    tracker.expect_from(SENDER, 100_000)
    tracker.observe(SENDER, 99_998)  # in the server's hands when it joined: arrives, not owed
    tracker.observe(SENDER, 99_999)
    tracker.observe(SENDER, 100_000)
    tracker.observe(SENDER, 100_002)
    assert tracker.gaps() == {SENDER: 1}
    window = tracker.window(SENDER, 100_003, 100_010)
    assert (window.owed, window.lost, window.at_leave, window.arrived, window.boundary) == (3, 1, 7, 4, 2)
    assert tracker.lost({SENDER: 100_003}) == 1
