"""The Locust users' receive path, in process (no locust, no gevent): the
swarm's ReceivePath and DeliveryRecorder with senders learned as they appear,
latencies per sender origin moved onto this process's clock, integrity for
receivers that join mid-stream (bench/loadtest/receive.py, integrity.py)."""

from __future__ import annotations

import time

from bench import wire
from bench.loadtest.clocks import Estimate
from bench.loadtest.integrity import JoiningTracker, Ledger, merge_states
from bench.loadtest.receive import CORRECTED_KEY, SAME_KEY, Receiving
from bench.loadtest.support import COUNTER_BITS, Identity, name_of, origin_of
from bench.measure.probe import encode_probe, make_payload
from bench.net.rx import Read, ReceivePath

MS = 1_000_000


class Rows:
    """What Locust's FANOUT rows were given."""

    def __init__(self) -> None:
        self.delivered: list[int] = []
        self.unmeasured = 0

    def add_delivered(self, latencies_us: list[int], length: int) -> None:
        self.delivered += latencies_us

    def add_unmeasured(self, count: int, length: int) -> None:
        self.unmeasured += count


class RowsSink:
    def __init__(self, rows: Rows) -> None:
        self.rows = rows

    def delivered(self, latencies_us: list[int], length: int) -> None:
        self.rows.add_delivered(latencies_us, length)

    def unmeasured(self, count: int, length: int) -> None:
        self.rows.add_unmeasured(count, length)


def line(sid: int, seq: int, intended: int, name: str | None = None) -> bytes:
    text = encode_probe(sid, seq, intended, make_payload(16, sid, seq))
    return f"{name or name_of(sid)}: {text}\n".encode()


def setup() -> tuple[Receiving, Rows, ReceivePath]:
    rx = Receiving()
    rows = Rows()
    rx.labels.rows = RowsSink(rows)
    return rx, rows, ReceivePath(wire.get("chat"), rx.recorder)


def test_identities_name_their_process_and_their_name() -> None:
    ids = Identity()
    (name1, sid1), (name2, sid2) = ids.next(), ids.next()
    assert origin_of(sid1) == origin_of(sid2) == ids.origin > 0
    assert sid2 == sid1 + 1 and sid1 & ((1 << COUNTER_BITS) - 1) == 1
    assert name1 == name_of(sid1) and name1 != name2
    assert sid1 < 1 << 63  # fits the recorder's int64 arrays
    assert Identity().origin != ids.origin  # another process (or a forked child) draws its own


def test_same_clock_and_corrected_deliveries_go_to_their_labels() -> None:
    t0 = time.monotonic_ns()  # now: corrections age their bounds by the time since the estimates
    rx, rows, path = setup()
    own = (rx.table.origin << COUNTER_BITS) | 99
    local = (rx.table.origin << COUNTER_BITS) | 1
    foreign_origin = rx.table.origin + 1
    foreign = (foreign_origin << COUNTER_BITS) | 1
    rx.table.set_own(Estimate(offset_ns=0, bound_ns=100_000, at_ns=t0))
    rx.table.update(
        [
            {
                "origin": foreign_origin,
                "key": rx.table.key + "+monotonic=3.000000000",
                "offset_ns": -3000 * MS,
                "bound_ns": 50_000,
                "at_master_ns": t0,
            }
        ]
    )
    tracker = JoiningTracker()
    # A local sender 2 ms ago; the foreign one stamped on a clock 3 s ahead, 2 ms ago too.
    block = line(local, 0, t0 - 2 * MS) + line(foreign, 0, t0 + 3000 * MS - 2 * MS) + line(own, 0, t0)
    path.take_block(tracker, own, block, t0)
    rx.labels.flush()
    hists, clock = rx.labels.take()
    assert hists[SAME_KEY].count == 1 and hists[SAME_KEY].max == 2000
    assert hists[CORRECTED_KEY].count == 1 and abs(hists[CORRECTED_KEY].max - 2000) <= 2
    assert clock.corrected == 1 and clock.bound_max_ns >= 150_000
    assert sorted(rows.delivered) == [2000, 2000]
    assert rx.recorder.echoes == 1  # its own message coming back is not a delivery
    assert tracker.faults_by_sender == {}


def test_a_sender_of_unknown_clock_or_beyond_the_bound_is_counted_not_measured() -> None:
    t0 = time.monotonic_ns()  # now: corrections age their bounds by the time since the estimates
    rx, rows, path = setup()
    stranger = ((rx.table.origin + 7) << COUNTER_BITS) | 1
    tracker = JoiningTracker()
    path.take_block(tracker, 5, line(stranger, 0, t0 - MS) + line(stranger, 1, t0 - MS), t0)
    rx.labels.flush()
    hists, clock = rx.labels.take()
    assert hists[SAME_KEY].count == hists[CORRECTED_KEY].count == 0
    assert clock.unknown == 2 and rows.unmeasured == 2 and rows.delivered == []
    assert rx.recorder.delivered_all == 2 and tracker.received() == 2  # counted for integrity all the same
    # Known now, but its offset is older than the bound allows: over the bound.
    rx.table.set_own(Estimate(offset_ns=0, bound_ns=900_000, at_ns=t0))
    rx.table.update(
        [{"origin": rx.table.origin + 7, "key": "elsewhere", "offset_ns": 0, "bound_ns": 200_000, "at_master_ns": t0}]
    )
    path.take_block(tracker, 5, line(stranger, 2, t0 - MS), t0)
    rx.labels.flush()
    assert rx.labels.take()[1].over_bound == 1


def test_a_receiver_counts_each_sender_from_the_first_message_it_gets() -> None:
    t0 = time.monotonic_ns()  # now: corrections age their bounds by the time since the estimates
    rx, _rows, path = setup()
    sender = (rx.table.origin << COUNTER_BITS) | 3
    tracker = JoiningTracker()
    # Joined while the sender was at 57: 57, 58, (59 lost), 60; then 58 again.
    block = b"".join(line(sender, seq, t0 - MS) for seq in (57, 58, 60, 58))
    path.take_block(tracker, 1, block, t0)
    assert tracker.gaps() == {sender: 1}
    assert tracker.duplicated == 1 and tracker.received() == 3
    ledger = Ledger()
    ledger.trackers["r"] = tracker
    state = ledger.state()
    assert (state["lost"], state["duplicated"], state["received"]) == (1, 1, {"r": 3})


def test_names_are_checked_against_the_sender_id_and_damage_is_counted() -> None:
    t0 = time.monotonic_ns()  # now: corrections age their bounds by the time since the estimates
    rx, _rows, path = setup()
    sender = (rx.table.origin << COUNTER_BITS) | 4
    tracker = JoiningTracker()
    impostor = line(sender, 0, t0 - MS, name="mallory")
    damaged = line(sender, 1, t0 - MS).replace(b"~cb2 ", b"~cb2 9", 1)  # its sender field damaged
    path.take_block(tracker, 1, impostor + damaged + line(sender, 2, t0 - MS), t0)
    assert tracker.corrupted == 2
    assert tracker.gaps() == {}  # the damaged ones started nothing: the sender is counted from seq 2
    assert rx.recorder.delivered_all == 1


def test_pairs_protocols_learn_their_senders_too() -> None:
    t0 = time.monotonic_ns()  # now: corrections age their bounds by the time since the estimates
    rx, rows, _path = setup()
    path = ReceivePath(wire.get("irc"), rx.recorder)
    sender = (rx.table.origin << COUNTER_BITS) | 5
    text = encode_probe(sender, 0, t0 - 3 * MS, make_payload(16, sender, 0))
    block = f":{name_of(sender)}!u@h PRIVMSG #chatbench :{text}\r\n".encode()
    path.take(wire.get("irc").decoder(), JoiningTracker(), 1, Read(block, t0))
    rx.labels.flush()
    assert rows.delivered == [3000]


def test_the_ledger_counts_gaps_from_the_first_message_and_merges() -> None:
    a = Ledger()
    t = a.tracker("r1")
    t.observe(9, 5)  # joined mid-stream: 0..4 are not lost
    t.observe(9, 7)
    t.observe(9, 6)  # reordered
    t.observe(9, 6)  # duplicated
    t.observe_corrupt(9, 8)  # arrived damaged: not lost
    t.observe(9, 10)  # 9 is a gap: lost
    b = Ledger()
    b.tracker("r2").observe(9, 0)
    merged = merge_states([a.state(), b.state()])
    assert (merged["lost"], merged["duplicated"], merged["reordered"], merged["corrupted"]) == (1, 1, 1, 1)
    assert merged["receivers"] == 2
    assert merged["received"] == {"r1": 5, "r2": 1}  # 5, 6, 7, 8 (damaged), 10
    assert merged["pairs"] == [
        {"receiver": "r1", "sender": 9, "lost": 1, "duplicated": 1, "reordered": 1, "corrupted": 1}
    ]
