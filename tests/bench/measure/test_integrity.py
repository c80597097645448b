"""Integrity checker: synthetic streams with known faults report exactly those."""

from __future__ import annotations

from bench.measure import probe
from bench.measure.integrity import (
    DUPLICATE,
    IN_ORDER,
    REORDERED,
    IntegrityCounts,
    IntegrityTracker,
    total,
)
from bench.measure.recorder import DeliveryRecorder
from server import protocol


def test_one_of_each_fault_is_reported_exactly() -> None:
    t = IntegrityTracker()
    # sender 7 sends 0..9: 2 arrives twice, 3 and 4 swap, 5 never arrives, 7 arrives damaged.
    results = [t.observe(7, seq) for seq in (0, 1, 2, 2, 4, 3, 6)]
    t.observe_corrupt(7, 7)
    results += [t.observe(7, seq) for seq in (8, 9)]
    assert results == [IN_ORDER, IN_ORDER, IN_ORDER, DUPLICATE, IN_ORDER, REORDERED, IN_ORDER, IN_ORDER, IN_ORDER]
    assert t.finish({7: 10}) == IntegrityCounts(lost=1, duplicated=1, reordered=1, corrupted=1)


def test_clean_streams_from_several_senders_have_no_faults() -> None:
    t = IntegrityTracker()
    for seq in range(50):
        for sender in (1, 2, 3):
            assert t.observe(sender, seq) == IN_ORDER
    assert t.finish({1: 50, 2: 50, 3: 50}).faults == 0


def test_missing_tail_and_silent_sender_count_as_lost_but_own_messages_do_not() -> None:
    t = IntegrityTracker()
    for seq in range(5):
        t.observe(1, seq)
    # sender 1 sent 8 (the last 3 never came), sender 2 sent 4 (none came), 9 is the receiver itself.
    counts = t.finish({1: 8, 2: 4, 9: 100}, skip_sender=9)
    assert counts == IntegrityCounts(lost=7)


def test_unreadable_corruption_is_counted_once_and_its_message_stays_lost() -> None:
    t = IntegrityTracker()
    t.observe(1, 0)
    t.observe_corrupt()  # header unreadable: cannot say which message it was
    t.observe(1, 2)
    assert t.finish({1: 3}) == IntegrityCounts(lost=1, corrupted=1)


def test_corrupt_copy_of_an_already_received_message_is_not_also_lost() -> None:
    t = IntegrityTracker()
    t.observe(1, 0)
    t.observe(1, 2)  # 1 is a hole
    t.observe_corrupt(1, 1)  # 1 arrives late and damaged: fills the hole
    assert t.finish({1: 3}) == IntegrityCounts(corrupted=1)


def test_counts_add_up() -> None:
    a = IntegrityCounts(1, 2, 3, 4)
    b = IntegrityCounts.from_dict({"lost": 10, "corrupted": 1})
    assert total([a, b]).as_dict() == {"lost": 11, "duplicated": 2, "reordered": 3, "corrupted": 5}
    assert total([a, b]).faults == 21


def test_probe_header_reads_sender_and_seq_or_gives_up() -> None:
    good = probe.encode_probe(12, 34, 56, "abc")
    assert probe.probe_header(good) == (12, 34)
    assert probe.probe_header(good.replace("abc", "abd")) == (12, 34)  # still readable though the CRC fails
    assert probe.probe_header("~cb2 x y z") is None
    assert probe.probe_header("~cb2 5") is None
    assert probe.probe_header("hello") is None


# -- the whole receive path, on real protocol lines --------------------------


def _line(name: str, sender: int, seq: int, intended_ns: int) -> bytes:
    text = probe.encode_probe(sender, seq, intended_ns, probe.make_payload(32, sender, seq))
    return protocol.encode_message(name, text)


def test_receive_path_reports_exactly_the_faults_in_a_synthetic_stream() -> None:
    names = {1: "alice", 2: "bob"}
    measure_start = 1_000_000_000
    rec = DeliveryRecorder(names, measure_start_ns=measure_start)
    tracker = IntegrityTracker()
    now = measure_start + 50_000_000

    def at(seq: int) -> int:  # seq 0 is warm-up, later ones measured
        return measure_start - 1 if seq == 0 else measure_start + seq * 1_000_000

    alice = [_line("alice", 1, seq, at(seq)) for seq in range(10)]
    bob = [_line("bob", 2, seq, at(seq)) for seq in range(10)]
    damaged = alice[7].replace(b"alice: ~cb2 1 7 ", b"alice: ~cb2 1 7 9")  # intended time changed: CRC fails
    assert damaged != alice[7]
    stream = [
        *alice[:3],
        alice[2],  # duplicated
        alice[4],
        alice[3],  # reordered
        alice[6],  # 5 is lost
        damaged,  # corrupted
        alice[8],
        alice[9],
        *bob,
        protocol.encode_joined("carol").rstrip(b"\n"),  # a notice, not a delivery
        protocol.encode_message("carol", "just chatting").rstrip(b"\n"),  # chat that is not a probe
    ]
    lines = protocol.LineDecoder(8192).feed(b"".join(line if line.endswith(b"\n") else line + b"\n" for line in stream))
    other = rec.feed(tracker, own=3, lines=lines, now=now)

    assert tracker.finish({1: 10, 2: 10}, skip_sender=3) == IntegrityCounts(
        lost=1, duplicated=1, reordered=1, corrupted=1
    )
    assert other == ["*** carol joined the chat", "carol: just chatting"]  # every line without a probe
    # alice: 0,1,2,3,4,6,8,9 intact = 8; bob: 10.  Warm-up (seq 0) is delivered but not measured.
    assert rec.delivered_all == 18
    assert rec.delivered_measured == 16
    assert rec.hist.count == 16
    assert rec.hist.max <= (now - at(1)) // 1000 + 50  # latency = now - intended, in microseconds
    assert rec.hist.min >= (now - at(9)) // 1000 - 50


def test_receive_path_flags_a_probe_under_the_wrong_name_and_counts_echoes() -> None:
    rec = DeliveryRecorder({1: "alice", 2: "bob"})
    tracker = IntegrityTracker()
    lines = [
        _line("bob", 1, 0, 0).rstrip(b"\n"),  # alice's probe attributed to bob
        _line("alice", 1, 1, 0).rstrip(b"\n"),
        _line("bob", 2, 0, 0).rstrip(b"\n"),  # the receiver's own message echoed back
    ]
    rec.feed(tracker, own=2, lines=lines, now=10**9)
    assert tracker.finish({1: 2, 2: 1}, skip_sender=2) == IntegrityCounts(corrupted=1)
    assert rec.echoes == 1
    assert rec.delivered_all == 1
