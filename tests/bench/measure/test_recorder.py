"""The receive path's fast paths give exactly the reference results.

``DeliveryRecorder.receive`` (block path for big buffers, per-line path
otherwise), ``DeliveryRecorder.record_pairs``, ``LatencyHistogram.record_array``,
``IntegrityTracker.observe_block`` and ``probe.parse_probe_block`` are each
compared with the plain code they replace, on clean streams and on streams
with every kind of fault; labels split the same deliveries.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.measure import probe, probeline
from bench.measure import recorder as recorder_mod
from bench.measure.integrity import DUPLICATE, IntegrityTracker
from bench.measure.labelled import Labelled
from bench.measure.recorder import DeliveryRecorder
from bench.measure.stats import HIGHEST_US, LatencyHistogram
from bench.wire.lines import BlockLineDecoder
from server import protocol

NAMES = {1: "alice", 2: "bob", 3: "carol", 40: "dave-40"}
OWN = 3


def _hist_state(h: LatencyHistogram) -> tuple[Any, ...]:
    raw = h._hist
    return (list(raw.counts), raw.total_count, raw.min_value, raw.max_value, h.clamped, h.summary())


@given(st.lists(st.integers(-5, 2 * HIGHEST_US), max_size=300))
@settings(max_examples=200, deadline=None)
def test_record_array_is_record_of_each_value(values: list[int]) -> None:
    slow, fast = LatencyHistogram(), LatencyHistogram()
    for v in values:
        slow.record(v)
    fast.record_array(np.array(values, dtype=np.int64))
    assert _hist_state(fast) == _hist_state(slow)


def test_record_array_on_a_wide_realistic_spread() -> None:
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.integers(1, 5000, 20000), rng.integers(1, HIGHEST_US, 2000), [1, HIGHEST_US]])
    slow, fast = LatencyHistogram(), LatencyHistogram()
    for v in values.tolist():
        slow.record(v)
    fast.record_array(values[:10000])
    fast.record_array(values[10000:])
    assert _hist_state(fast) == _hist_state(slow)


@given(st.lists(st.tuples(st.sampled_from([1, 2, 5, 40000]), st.integers(0, 12)), max_size=300), st.integers(1, 4))
@settings(max_examples=300, deadline=None)
def test_observe_block_is_observe_of_each(events: list[tuple[int, int]], pieces: int) -> None:
    slow, fast = IntegrityTracker(), IntegrityTracker()
    expected = [slow.observe(s, q) != DUPLICATE for s, q in events]
    got: list[bool] = []
    size = max(1, len(events) // pieces)
    for i in range(0, len(events), size):
        part = events[i : i + size]
        senders = np.array([s for s, _ in part], dtype=np.int64)
        seqs = np.array([q for _, q in part], dtype=np.int64)
        mask = fast.observe_block(senders, seqs)
        got += [True] * len(part) if mask is None else mask.tolist()
    assert got == expected
    sent = {1: 13, 2: 13, 5: 13, 40000: 13}
    assert fast.finish(sent) == slow.finish(sent)
    assert (fast._next, fast._holes) == (slow._next, slow._holes)


def test_observe_block_in_order_returns_none() -> None:
    t = IntegrityTracker()
    senders = np.array([1, 2, 1, 2, 1], dtype=np.int64)
    assert t.observe_block(senders, np.array([0, 0, 1, 1, 2], dtype=np.int64)) is None
    assert t.observe_block(senders[:2], np.array([3, 2], dtype=np.int64)) is None
    assert t._next == {1: 4, 2: 3}


def _probe_texts(n: int, payload: int = 64) -> list[str]:
    return [probe.encode_probe(s, q, 10**12 + q, probe.make_payload(payload, s, q)) for q in range(n) for s in (1, 2)]


@pytest.mark.parametrize("digits", [1, 7, 8, 9, 16, 17, 18])
def test_parse_probe_block_reads_fields_of_every_width(digits: int) -> None:
    rng = random.Random(digits)
    values = [rng.randrange(10 ** (digits - 1) if digits > 1 else 0, 10**digits) for _ in range(300)]
    texts = [probe.encode_probe(v % 997, v, values[-1 - i], "p" * (i % 5)) for i, v in enumerate(values)]
    texts.append(probe.encode_probe(1, 2, 3, "x"))  # short fields too
    block = b"".join(protocol.encode_message("n" * (1 + i % 20), t) for i, t in enumerate(texts))
    layout = probeline.line_layout(block, probe.PROBE_SPACES)
    assert layout is not None
    got = probe.parse_probe_block(block, layout)
    assert got is not None
    probes = [probe.parse_probe(t) for t in texts]
    assert got.sender.tolist() == [p.sender for p in probes]
    assert got.seq.tolist() == [p.seq for p in probes]
    assert got.intended_ns.tolist() == [p.intended_ns for p in probes]


def test_parse_probe_block_leaves_19_digit_fields_to_the_per_line_path() -> None:
    texts = [probe.encode_probe(1, q, 10**18 + q, "x") for q in range(20)]
    block = b"".join(protocol.encode_message("name", t) for t in texts)
    layout = probeline.line_layout(block, probe.PROBE_SPACES)
    assert layout is not None
    assert probe.parse_probe_block(block, layout) is None


def test_parse_probe_block_agrees_with_parse_probe() -> None:
    texts = _probe_texts(40)
    block = b"".join(protocol.encode_message("x", t) for t in texts)
    layout = probeline.line_layout(block, probe.PROBE_SPACES)
    assert layout is not None
    got = probe.parse_probe_block(block, layout)
    assert got is not None
    probes = [probe.parse_probe(t) for t in texts]
    assert got.sender.tolist() == [p.sender for p in probes]
    assert got.seq.tolist() == [p.seq for p in probes]
    assert got.intended_ns.tolist() == [p.intended_ns for p in probes]


@pytest.mark.parametrize("position", [0, 20, 40, 60, 79])
def test_parse_probe_block_refuses_a_block_with_any_corrupted_byte(position: int) -> None:
    texts = _probe_texts(40)
    rng = random.Random(position)
    for _ in range(30):
        text = texts[position]
        i = rng.randrange(len(text))
        bad = text[:i] + rng.choice("0123456789abcdefxyzXYZ~") + text[i + 1 :]
        if bad == text:
            continue
        with pytest.raises(probe.CorruptProbe):
            probe.parse_probe(bad)  # the reference sees the damage...
        damaged = [*texts[:position], bad, *texts[position + 1 :]]
        block = b"".join(protocol.encode_message("x", t) for t in damaged)
        layout = probeline.line_layout(block, probe.PROBE_SPACES)
        if layout is None:
            continue
        # ...and so does the block path: it refuses the block.
        assert probe.parse_probe_block(block, layout) is None


# -- the whole receive path ------------------------------------------------------------


def _stream(
    rng: random.Random, n: int, faults: bool, names: dict[int, str] = NAMES
) -> tuple[list[bytes], dict[int, int]]:
    """Lines a receiver gets: probes from alice, bob and dave; with ``faults``
    also duplicates, swaps, losses, corruption, wrong names, echoes, notices,
    foreign chat and probes that are valid but not in the canonical form."""
    seqs = dict.fromkeys((1, 2, 40), 0)
    lines: list[bytes] = []
    for m in range(n):
        sender = rng.choice((1, 2, 40))
        seq = seqs[sender]
        seqs[sender] += 1
        intended = 10**12 + m * 1000 + (rng.choice((-(10**9), 0)) if m < 30 else 0)
        payload = probe.make_payload(rng.choice((0, 8, 64)), sender, seq)
        text = probe.encode_probe(sender, seq, intended, payload)
        line = protocol.encode_message(names[sender], text)
        if faults:
            r = rng.random()
            if r < 0.03:
                continue  # lost
            if r < 0.06:
                lines.append(line)  # duplicated
            elif r < 0.09 and lines:
                lines.insert(len(lines) - 1, line)  # swapped with the previous line
                continue
            elif r < 0.12:
                i = rng.randrange(len(line) - 1)
                line = line[:i] + bytes([rng.choice(b"0123456789az: ~\xff")]) + line[i + 1 :]
            elif r < 0.14:
                line = protocol.encode_message(names[2] if sender != 2 else names[1], text)  # wrong name (or room)
            elif r < 0.16:
                line = protocol.encode_message(names[OWN], probe.encode_probe(OWN, m, intended, "echo"))
            elif r < 0.18:
                lines.append(protocol.encode_joined(f"u{m}"))
            elif r < 0.20:
                lines.append(protocol.encode_message("eve", f"hello there {m}"))
            elif r < 0.21:
                # A sender id that is no one's (inside the block path's name table).
                line = protocol.encode_message("eve", probe.encode_probe(7, seq, intended, payload))
            elif r < 0.22:
                # Valid but not in encode_probe's form: the reference reads it.
                odd = rng.choice((f"+{seq}", f"0{seq}", f"{seq:_}"))
                text = probe.seal(f"{probe.TAG} {sender} {odd} {intended} {payload} ")
                line = protocol.encode_message(names[sender], text)
            elif r < 0.23:
                line = line[:-1] + b"\r\n"
        lines.append(line)
    return lines, seqs


def _run(
    lines: list[bytes], chunk_sizes: list[int], *, reference: bool, names: dict[int, str] = NAMES, own: int = OWN
) -> tuple[Any, ...]:
    rec = DeliveryRecorder(names, measure_start_ns=10**12 + 20_000)
    tracker = IntegrityTracker()
    decoder = BlockLineDecoder(1 << 16)
    data = b"".join(lines)
    other: list[str] = []
    pos = 0
    i = 0
    while pos < len(data):
        chunk = data[pos : pos + chunk_sizes[i % len(chunk_sizes)]]
        pos += len(chunk)
        now = 10**12 + 10**9 + pos * 100
        if reference:
            other += rec.feed_reference(tracker, own, decoder.feed(chunk), now)
        else:
            other += rec.receive(decoder, tracker, own, chunk, now)
        i += 1
    return (
        rec.delivered_all,
        rec.delivered_measured,
        rec.echoes,
        rec.lines,
        rec.last_measured_recv_ns,
        _hist_state(rec.hist),
        tracker.duplicated,
        tracker.reordered,
        tracker.corrupted,
        tracker._next,
        tracker._holes,
        other,
        rec.blocks_fast,
    )


@pytest.mark.parametrize("faults", [False, True])
@pytest.mark.parametrize("block_min", [0, 1 << 30])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_receive_gives_the_reference_results(
    faults: bool, block_min: int, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recorder_mod, "BLOCK_MIN_BYTES", block_min)
    rng = random.Random(seed)
    lines, _ = _stream(rng, 3000, faults)
    chunks = [rng.choice((1, 7, 100, 1000, 5000, 30000)) for _ in range(200)]
    expected = _run(lines, chunks, reference=True)
    got = _run(lines, chunks, reference=False)
    assert got[:-1] == expected[:-1]
    assert expected[0] > 1000
    if faults:
        assert expected[6] and expected[7] and expected[8] and expected[2]  # every fault kind occurred
    elif block_min == 0:
        assert got[-1] > 0  # the block path was taken


@pytest.mark.parametrize("block_min", [0, 1 << 30])
def test_deliveries_that_share_a_read_with_a_later_one_are_counted(
    block_min: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One stamp times every line of a read: each but the last shared it (both paths)."""
    monkeypatch.setattr(recorder_mod, "BLOCK_MIN_BYTES", block_min)
    lines, _ = _stream(random.Random(4), 40, False)
    rec = DeliveryRecorder(NAMES, measure_start_ns=0)
    tracker = IntegrityTracker()
    decoder = BlockLineDecoder(1 << 16)
    reads = [1, 3, 1, 5, 2, 1]  # lines per read
    pos = 0
    for k in reads:
        rec.receive(decoder, tracker, OWN, b"".join(lines[pos : pos + k]), 10**13)
        pos += k
    assert rec.delivered_measured == sum(reads)
    assert rec.shared_reads == sum(k - 1 for k in reads) == 7
    # Warm-up lines are delivered but not measured: they are not counted either.
    rec.measure_start_ns = 10**13
    rec.receive(decoder, tracker, OWN, b"".join(lines[pos : pos + 4]), 10**13)
    assert rec.shared_reads == 7


#: A workload's rooms: each stream's name is its room and its sender (``#r1 alice``),
#: as our server writes a room's line ``#r1 alice: TEXT`` and every adapter names a
#: room's delivery; the same sender in another room is another stream.
ROOM_NAMES = {1: "#r1 alice", 2: "#r2 alice", 3: "#r1 carol", 40: "#r12 dave-40"}


@pytest.mark.parametrize("faults", [False, True])
@pytest.mark.parametrize("block_min", [0, 1 << 30])
def test_room_lines_take_the_fast_paths_and_give_the_reference_results(
    faults: bool, block_min: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recorder_mod, "BLOCK_MIN_BYTES", block_min)
    rng = random.Random(7)
    lines, _ = _stream(rng, 3000, faults, ROOM_NAMES)
    assert faults or all(line.startswith(b"#") for line in lines)
    chunks = [rng.choice((1, 7, 100, 1000, 5000, 30000)) for _ in range(200)]
    expected = _run(lines, chunks, reference=True, names=ROOM_NAMES)
    if not faults:  # every clean room line is taken by a fast path, never by the reference

        def refuse(*args: object) -> int:
            raise AssertionError("a clean room line went to the reference")

        monkeypatch.setattr(DeliveryRecorder, "_reference", refuse)
    got = _run(lines, chunks, reference=False, names=ROOM_NAMES)
    assert got[:-1] == expected[:-1]
    assert expected[0] > 1000
    if faults:
        assert expected[8]  # the wrong-room lines (among the damage) are corrupted, not delivered
    elif block_min == 0:
        assert got[-1] > 0  # room lines took the block path


def test_a_line_in_the_wrong_room_is_a_fault_never_a_delivery() -> None:
    text = probe.encode_probe(1, 0, 10**12, "x")
    right = protocol.encode_room_message("#r1", "alice", text)
    wrong = protocol.encode_room_message("#r2", "alice", text)
    lobby = protocol.encode_message("alice", text)
    for line, delivered in ((wrong, 0), (lobby, 0), (right, 1)):
        rec, tracker = DeliveryRecorder({1: "#r1 alice"}), IntegrityTracker()
        rec.record_lines(tracker, 9, line, 10**12 + 1000)
        assert (rec.delivered_all, tracker.corrupted) == (delivered, 1 - delivered)
    pairs = DeliveryRecorder({1: "#r1 alice"})
    tracker = IntegrityTracker()
    later = probe.encode_probe(1, 1, 10**12, "x").encode()
    pairs.record_pairs(tracker, 9, [(b"#r2 alice", text.encode()), (b"#r1 alice", later)], 10**12)
    assert (pairs.delivered_all, tracker.corrupted) == (1, 1)


#: Sender names whose "NAME: " prefixes the block path zeroes byte by byte
#: (shorter than 8 bytes), with two 8-byte words, and with more.
NAME_SETS = {
    "short": {1: "al", 2: "bo", 5: "c", 9: "own"},
    "medium": {1: "alice-01", 2: "bob-0002", 5: "carol-5", 9: "own"},
    "long": {1: "a-rather-long-name-1", 2: "another-long-name-22", 5: "x" * 32, 9: "own"},
}


@pytest.mark.parametrize("names", NAME_SETS.values(), ids=NAME_SETS.keys())
def test_block_path_takes_clean_buffers_and_agrees_with_the_reference_under_damage(
    names: dict[int, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recorder_mod, "BLOCK_MIN_BYTES", 0)
    senders = [s for s in names if s != 9]
    lines = [
        protocol.encode_message(
            names[s], probe.encode_probe(s, q, 10**12 + 1000 * q, probe.make_payload(40 + q % 30, s, q))
        )
        for q in range(200)
        for s in senders
    ]
    chunks = [4000, 9000, 20000]
    expected = _run(lines, chunks, reference=True, names=names, own=9)
    got = _run(lines, chunks, reference=False, names=names, own=9)
    assert got[:-1] == expected[:-1]
    assert expected[0] == len(lines)
    assert got[-1] >= len(b"".join(lines)) // 20000  # the block path took (nearly) every buffer
    rng = random.Random(len(names[1]))
    for _ in range(40):
        damaged = list(lines)
        # One or two bytes changed, anywhere (names, fields, checks, newlines), in different lines.
        for i in rng.sample(range(len(lines)), rng.choice((1, 2))):
            j = rng.randrange(len(damaged[i]))
            damaged[i] = damaged[i][:j] + bytes([rng.choice(b"09azAW@:~ -")]) + damaged[i][j + 1 :]
        expected = _run(damaged, chunks, reference=True, names=names, own=9)
        got = _run(damaged, chunks, reference=False, names=names, own=9)
        assert got[:-1] == expected[:-1]


# -- labels (here: each delivery's path, a target of several nodes) ---------------------

#: Stream id -> label index, for the receiver OWN: alice and dave on its node, bob on the other.
ROUTES = {OWN: {1: 0, 2: 1, 40: 0}}
KEYS = ["path=same", "path=cross"]


def _run_labelled(lines: list[bytes], chunks: list[int], labelled: Labelled | None, *, reference: bool) -> Any:
    """Like :func:`_run`, with ``labelled``: the recorder and its counters."""
    rec = DeliveryRecorder(NAMES, measure_start_ns=10**12 + 20_000, labelled=labelled)
    tracker, decoder = IntegrityTracker(), BlockLineDecoder(1 << 16)
    data, pos, i = b"".join(lines), 0, 0
    while pos < len(data):
        chunk = data[pos : pos + chunks[i % len(chunks)]]
        pos, i = pos + len(chunk), i + 1
        now = 10**12 + 10**9 + pos * 100
        if reference:
            rec.feed_reference(tracker, OWN, decoder.feed(chunk), now)
        else:
            rec.receive(decoder, tracker, OWN, chunk, now)
    return rec


def _measured_from(lines: list[bytes], senders: set[int]) -> int:
    """Measured deliveries a clean stream holds from ``senders`` (read line by line)."""
    count = 0
    for line in lines:
        name, text = protocol.split_message(protocol.decode_text(line.rstrip(b"\r\n"))) or ("", "")
        parsed = probe.parse_probe(text)
        count += parsed.sender in senders and name == NAMES[parsed.sender] and parsed.intended_ns >= 10**12 + 20_000
    return count


@pytest.mark.parametrize("faults", [False, True])
@pytest.mark.parametrize("block_min", [0, 1 << 30])
def test_labels_split_the_same_deliveries_by_their_stream(
    faults: bool, block_min: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With labels, every measured delivery goes to exactly one label, by its
    (receiver, stream) route; all of them together are the histogram
    recorded with one label, and every counter is unchanged."""
    monkeypatch.setattr(recorder_mod, "BLOCK_MIN_BYTES", block_min)
    rng = random.Random(7)
    lines, _ = _stream(rng, 3000, faults)
    chunks = [rng.choice((1, 7, 100, 1000, 5000, 30000)) for _ in range(200)]
    plain = _run_labelled(lines, chunks, None, reference=False)
    assert plain.labelled.single
    for reference in (False, True):
        rec = _run_labelled(lines, chunks, Labelled(KEYS, ROUTES), reference=reference)
        same, cross = rec.labelled.hists
        # The same counts and summary (a merge keeps min and max to their bucket, as the parent's merge does).
        assert (list(rec.hist._hist.counts), rec.hist.clamped, rec.hist.summary()) == (
            list(plain.hist._hist.counts),
            plain.hist.clamped,
            plain.hist.summary(),
        )
        assert (rec.delivered_all, rec.delivered_measured) == (plain.delivered_all, plain.delivered_measured)
        assert same.count + cross.count == plain.delivered_measured
        assert same.count > 0 and cross.count > 0
        assert rec.labelled.strays == 0
        if not faults:
            assert cross.count == _measured_from(lines, {2})  # bob is on the other node
            assert same.count == _measured_from(lines, {1, 40})
    if block_min == 0 and not faults:
        assert _run_labelled(lines, chunks, Labelled(KEYS, ROUTES), reference=False).blocks_fast > 0


def test_a_stream_outside_the_receivers_audience_is_a_stray_not_a_measurement() -> None:
    rng = random.Random(8)
    lines, _ = _stream(rng, 500, False)
    routes = {OWN: {1: 0, 40: 1}}  # bob's stream is not one OWN hears
    rec = _run_labelled(lines, [30000, 700], Labelled(KEYS, routes), reference=False)
    from_bob = _measured_from(lines, {2})
    assert from_bob > 0
    assert rec.labelled.strays == from_bob
    assert sum(h.count for h in rec.labelled.hists) == _measured_from(lines, {1, 40})


# -- pairs: deliveries straight from a protocol's framing ----------------------------------


def _pairs_of(lines: list[bytes]) -> list[tuple[bytes | None, bytes]]:
    return [(line.split(b": ", 1)[0], line.split(b": ", 1)[1]) for line in lines if b": " in line]


@pytest.mark.parametrize("faults", [False, True])
def test_record_pairs_gives_what_the_same_lines_give(faults: bool) -> None:
    """A stream handed over as (name, text) pairs (IRC, the shootout) is
    accounted exactly as the same probe lines are."""
    rng = random.Random(9)
    lines = [line.rstrip(b"\r\n") for line in _stream(rng, 2000, faults)[0]]
    by_lines = DeliveryRecorder(NAMES, measure_start_ns=10**12 + 20_000)
    by_pairs = DeliveryRecorder(NAMES, measure_start_ns=10**12 + 20_000)
    t1, t2 = IntegrityTracker(), IntegrityTracker()
    probe_lines = [line for line in lines if probeline.split_line(line) is not None]
    for i in range(0, len(probe_lines), 37):
        now = 10**12 + 10**9 + i * 1000
        by_lines.feed_reference(t1, OWN, probe_lines[i : i + 37], now)
        by_pairs.record_pairs(t2, OWN, _pairs_of(probe_lines[i : i + 37]), now)
    assert (by_pairs.delivered_all, by_pairs.delivered_measured, by_pairs.echoes) == (
        by_lines.delivered_all,
        by_lines.delivered_measured,
        by_lines.echoes,
    )
    assert _hist_state(by_pairs.hist) == _hist_state(by_lines.hist)
    assert (t2.duplicated, t2.reordered, t2.corrupted, t2._next, t2._holes) == (
        t1.duplicated,
        t1.reordered,
        t1.corrupted,
        t1._next,
        t1._holes,
    )


def test_nameless_pairs_check_everything_but_the_name() -> None:
    """The shootout carries no names: a probe is still checked and counted,
    an unknown sender id is corrupt, an echo is an echo."""
    rec, tracker = DeliveryRecorder(NAMES), IntegrityTracker()
    ok = probe.encode_probe(1, 0, 10**12, "x").encode()
    unknown = probe.encode_probe(7, 0, 10**12, "x").encode()
    echo = probe.encode_probe(OWN, 0, 10**12, "x").encode()
    rec.record_pairs(tracker, OWN, [(None, ok), (None, unknown), (None, echo), (None, b"not a probe")], 10**12 + 5000)
    assert (rec.delivered_all, rec.echoes, tracker.corrupted) == (1, 1, 1)
    assert rec.hist.count == 1 and rec.hist.max == 5
