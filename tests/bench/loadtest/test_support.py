"""The Locust integration's plain parts, in process (no locust, no gevent here)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from bench.loadtest.support import (
    CLOCK_TAG,
    MAX_PAYLOAD,
    RECEIVE_LINE_LIMIT,
    BadLine,
    ChatLine,
    CorruptDelivery,
    Delivery,
    ForeignDelivery,
    Identity,
    ServerLine,
    fanout_counts,
    pack_delta,
    parse_host,
    probe_line,
    read_line,
    sender_clock,
    step_end,
    step_users,
    summary_line,
    unpack_delta,
)
from bench.measure.probe import encode_probe
from bench.measure.stats import LatencyHistogram
from server import protocol


def test_support_module_imports_neither_locust_nor_gevent() -> None:
    code = (
        "import sys, bench.loadtest.support\n"
        "bad = [m for m in ('locust', 'gevent') if m in sys.modules]\n"
        "sys.exit(f'imported {bad}' if bad else 0)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr + done.stdout


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("tcp://127.0.0.1:8000", ("127.0.0.1", 8000)),
        ("tcp://localhost:1234", ("localhost", 1234)),
        ("127.0.0.1:9", ("127.0.0.1", 9)),
        ("tcp://[::1]:8001", ("::1", 8001)),
        ("tcp://example.org", ("example.org", 8000)),
        (None, ("127.0.0.1", 8000)),
    ],
)
def test_parse_host_accepts_the_documented_forms(host: str | None, address: tuple[str, int]) -> None:
    assert parse_host(host) == address


@pytest.mark.parametrize("host", ["http://127.0.0.1:8000", "tcp://:8000", "tcp://127.0.0.1:99999"])
def test_parse_host_rejects_other_schemes_and_bad_ports(host: str) -> None:
    with pytest.raises(ValueError, match=r"host"):
        parse_host(host)


def test_identities_are_unique_valid_names_carrying_this_clock() -> None:
    identity = Identity()
    seen = [identity.next() for _ in range(1000)]
    names = [name for name, _ in seen]
    senders = [sender for _, sender in seen]
    assert len(set(names)) == len(names)
    assert len(set(senders)) == len(senders)
    for name in names:
        assert protocol.validate_name(name) == name
    assert {sender_clock(sender) for sender in senders} == {CLOCK_TAG}
    # Another process's identity (another random token) does not collide.
    other = Identity()
    assert not {name for name, _ in (other.next() for _ in range(100))} & set(names)


def relayed(sender_name: str, client_bytes: bytes) -> bytes:
    """What the server makes of a client's chat line: ``NAME: TEXT``."""
    (line,) = protocol.LineDecoder().feed(client_bytes)
    text = protocol.decode_text(line)
    assert isinstance(protocol.parse_client_line(text), protocol.Say)
    (out,) = protocol.LineDecoder(RECEIVE_LINE_LIMIT).feed(protocol.encode_message(sender_name, text))
    return out


def test_a_relayed_probe_measures_receive_time_minus_intended_time() -> None:
    sender = (CLOCK_TAG << 48) | 7
    intended = time.monotonic_ns()
    line = relayed("alice", probe_line(sender, 3, intended, 64))
    got = read_line(line, intended + 1_234_567)
    assert got == Delivery(1_234_567, len(line) + 1, sender, 3)


def test_the_largest_payload_still_fits_the_server_line_limit() -> None:
    sender = (0xFFFF << 48) | (0xFFFFFF << 24) | 0xFFFFFF
    data = probe_line(sender, 10**9, 2**63 - 1, MAX_PAYLOAD)
    assert len(data) - 1 <= protocol.DEFAULT_MAX_LINE_BYTES


def test_a_probe_from_another_clock_is_counted_not_timed() -> None:
    other_clock = (CLOCK_TAG + 1) % 0x10000
    line = relayed("bob", probe_line(other_clock << 48, 0, 5, 8))
    assert read_line(line, 10) == ForeignDelivery(len(line) + 1, other_clock << 48, 0)


def test_a_damaged_probe_is_reported_as_corrupt() -> None:
    text = encode_probe(CLOCK_TAG << 48, 0, 5, "abcdef").replace("abcdef", "abcdeX")
    line = protocol.encode_message("carol", text).rstrip(b"\n")
    got = read_line(line, 10)
    assert isinstance(got, CorruptDelivery)


def test_other_lines_are_chat_or_server_events_or_bad() -> None:
    assert read_line(b"dave: hello there", 0) == ChatLine("dave", "hello there")
    got = read_line(protocol.encode_disconnect("server shutting down").rstrip(b"\n"), 0)
    assert got == ServerLine(protocol.Disconnected("server shutting down"))
    joined = read_line(protocol.encode_joined("erin").rstrip(b"\n"), 0)
    assert joined == ServerLine(protocol.Joined("erin"))
    bad = read_line(b"no separator here", 0)
    assert isinstance(bad, BadLine)


def test_step_users_climbs_one_step_per_interval_up_to_the_maximum() -> None:
    wanted = [step_users(t, 50, 10.0, 120) for t in (0.0, 9.99, 10.0, 19.9, 20.0, 35.0, 1000.0)]
    assert wanted == [50, 50, 100, 100, 120, 120, 120]
    assert step_end(50, 10.0, 120) == 30.0
    assert step_end(10, 2.0, 40) == 8.0


def test_worker_deltas_merge_to_the_exact_histogram_of_all_values() -> None:
    values_a = [100, 250, 250, 1_000, 40_000]
    values_b = [90, 5_000, 5_001, 2_000_000]
    a, b, everything = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    a.record_many(values_a)
    b.record_many(values_b)
    everything.record_many(values_a + values_b)
    merged = LatencyHistogram()
    for hist in (a, b):
        packed = pack_delta(hist)
        assert packed is not None
        merged.merge(unpack_delta(packed))
    assert merged.summary() == everything.summary()
    assert pack_delta(LatencyHistogram()) is None


def test_unpack_delta_rejects_a_count_mismatch() -> None:
    hist = LatencyHistogram()
    hist.record(5)
    packed = pack_delta(hist)
    assert packed is not None
    packed["count"] = 2
    with pytest.raises(ValueError, match="report says 2"):
        unpack_delta(packed)


def test_fanout_counts_reads_the_fanout_row_of_serialized_stats() -> None:
    entries = [
        {"name": "broadcast", "method": "FANOUT", "num_requests": 40, "num_failures": 1},
        {"name": "chat", "method": "SEND", "num_requests": 7, "num_failures": 0},
        {"name": "broadcast (other clock)", "method": "FANOUT", "num_requests": 3, "num_failures": 0},
    ]
    assert fanout_counts(entries) == (40, 1)
    assert fanout_counts([]) == (0, 0)


def test_summary_line_gives_milliseconds() -> None:
    hist = LatencyHistogram()
    hist.record_many([1_500] * 99 + [2_000])
    line = summary_line(hist.summary())
    assert line.startswith("deliveries=100 p50=1.500ms")
    assert "max=2.000ms" in line
    assert "deliveries=0" in summary_line(LatencyHistogram().summary())
