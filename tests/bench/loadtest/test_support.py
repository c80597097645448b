"""The Locust integration's plain parts, in process (no locust, no gevent here)."""

from __future__ import annotations

import csv
import io
import subprocess
import sys

import pytest

from bench.loadtest.document import (
    ClockResult,
    ReadLag,
    clock_line,
    csv_text,
    exact,
    fanout_counts,
    lag_line,
    pack_delta,
    summary_line,
    unpack_delta,
)
from bench.loadtest.support import (
    MAX_PAYLOAD,
    Identity,
    clock_labels,
    name_of,
    origin_of,
    parse_host,
    step_end,
    step_users,
)
from bench.measure.probe import encode_probe, make_payload
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


def test_identities_are_unique_valid_names_carrying_their_process() -> None:
    identity = Identity()
    seen = [identity.next() for _ in range(1000)]
    names = [name for name, _ in seen]
    senders = [sender for _, sender in seen]
    assert len(set(names)) == len(names)
    assert len(set(senders)) == len(senders)
    for name, sender in seen:
        assert protocol.validate_name(name) == name == name_of(sender)
    assert {origin_of(sender) for sender in senders} == {identity.origin}
    # Another process's identity (another random origin) does not collide.
    other = Identity()
    assert not {name for name, _ in (other.next() for _ in range(100))} & set(names)


def test_the_largest_payload_still_fits_the_server_line_limit() -> None:
    sender = (1 << 63) - 1
    text = encode_probe(sender, 10**9, 2**63 - 1, make_payload(MAX_PAYLOAD, sender, 0))
    assert len(protocol.encode_say(text)) - 1 <= protocol.DEFAULT_MAX_LINE_BYTES
    assert len(name_of(sender)) <= 31  # an IRC nick (ngircd's MaxNickLength)


def test_the_clock_labels_are_the_workload_dimension() -> None:
    assert clock_labels() == ("clock=same", "clock=corrected")


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
        {"name": "broadcast (clock unmeasured)", "method": "FANOUT", "num_requests": 3, "num_failures": 0},
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


def test_the_exact_csv_gives_every_series_and_the_read_lag_beside_them() -> None:
    same, corrected, lag = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    same.record_many([1_000, 2_000])
    corrected.record_many([1_500])
    lag.record_many([10, 20, 30])
    everything = LatencyHistogram()
    everything.merge(same)
    everything.merge(corrected)
    clock = ClockResult(
        max_error_ms=1.0,
        corrected=1,
        bound_max_ms=0.25,
        unmeasured=2,
        unmeasured_offset_unknown=2,
        unmeasured_over_bound=0,
        workers=[],
        warnings=[],
    )
    read_lag = ReadLag(**exact(lag), unstamped_reads=0)
    text = csv_text(
        everything.summary(), {"clock=same": exact(same), "clock=corrected": exact(corrected)}, read_lag, clock
    )
    rows = {row["Series"]: row for row in csv.DictReader(io.StringIO(text))}
    assert list(rows) == ["all", "clock=same", "clock=corrected", "read lag"]
    assert rows["all"]["Count"] == "3" and rows["all"]["Max"] == "2.000"
    assert rows["clock=corrected"]["Clock error bound"] == "0.250"
    assert rows["read lag"]["50%"] == "0.020"
    assert "read lag p50=0.020ms" in lag_line(read_lag)
    line = clock_line(clock)
    assert line is not None and "corrected=1 (error bound <= 0.250ms) unmeasured=2" in line
    assert clock_line(ClockResult(**{**clock, "corrected": 0, "unmeasured": 0, "bound_max_ms": None})) is None
