"""Replay benchmark of the harness's receive path: no sockets, no server.

``python -m bench replay --help`` for the command line; from Python::

    from bench.studies.replay import ReplayConfig, make_stream, run_replay
    stream = make_stream(ReplayConfig(deliveries=100_000))
    result = run_replay(stream)
    result.per_s, result.delivered, result.faults

What it measures: a swarm worker's cost per delivery on the receive side --
exactly the code :meth:`bench.swarm.receiver.Receiver.readable` runs for every
``recv`` buffer of a registered receiver once it is read
(:meth:`bench.net.rx.ReceivePath.take`: line framing, the adapter, the
probe-line split, probe parsing and checksum, the integrity check and the
latency histogram) -- fed with a recorded-like stream instead of a socket.

The stream is what this project's server sends a receiver: ``NAME: PROBE``
lines (``protocol.encode_message``) from ``senders`` senders in round-robin
order, sequence numbers counting up per sender, intended send times spaced
as at ``rate`` messages/s.  It is cut into ``recv``-sized chunks at
pseudo-random points (lines split across chunks, as TCP delivers them), and
``receivers`` receivers each get every chunk in turn, as a ``select`` loop
over many ready sockets would hand them over.  Each chunk is "received" at
a time a little after the last message it completes, so latencies are known
exactly: :attr:`ReplayStream.expected_histogram` is built value by value with
:meth:`LatencyHistogram.record` and the replay's histogram must equal it.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import TypedDict

from bench import wire
from bench.measure import probe, probeline
from bench.measure.integrity import IntegrityCounts, IntegrityTracker
from bench.measure.intervals import CLOSE_GRACE_NS, DEFAULT_INTERVAL_S, ClosedInterval, IntervalAxis
from bench.measure.recorder import DeliveryRecorder
from bench.measure.stats import LatencyHistogram
from bench.net.rx import Read, ReceivePath
from bench.results.schema import Latency
from server import protocol

#: Name prefix of the replayed senders (as the swarm names its clients).
NAME_PREFIX = "cbREPLAY-"
#: ``kind`` of the ``--json`` document.
REPLAY_KIND = "chatbench.replay"
#: How often (stream time) the replay closes intervals: a swarm worker's housekeeping period.
HOUSEKEEPING_NS = 20_000_000


class ReplayConfigDoc(TypedDict):
    """A :class:`ReplayConfig`'s fields, as ``--json`` writes them."""

    deliveries: int
    senders: int
    receivers: int
    payload_bytes: int
    chunk_bytes: int
    rate: float
    base_latency_us: int
    jitter_us: int
    warmup_fraction: float
    seed: int
    interval_s: float


class ReplayResultDoc(TypedDict):
    """:meth:`ReplayResult.as_dict`: one replay's counts and speed."""

    deliveries_expected: int
    delivered: int
    delivered_measured: int
    measured_expected: int
    histogram_count: int
    integrity: dict[str, int]  #: IntegrityCounts.as_dict()
    other_lines: int
    chunks: int
    lines: int
    blocks_fast: int
    elapsed_s: float
    faults: int
    per_s: int
    ns_per_delivery: float | None
    histogram_summary: Latency


class ReplayRow(ReplayResultDoc):
    """One chunk size in ``--json``: its config and its best replay."""

    config: ReplayConfigDoc
    lines_per_chunk: float


class ReplayDocument(TypedDict):
    """What ``bench replay --json`` prints."""

    kind: str
    runs: list[ReplayRow]


@dataclass(frozen=True)
class ReplayConfig:
    deliveries: int = 1_000_000  #: total deliveries over all receivers
    senders: int = 10
    receivers: int = 4
    payload_bytes: int = 64
    chunk_bytes: int = 65536  #: mean recv size; actual sizes are uniform in [chunk/2, 3*chunk/2]
    rate: float = 100_000.0  #: messages/s the intended send times are spaced at
    base_latency_us: int = 200  #: every chunk is received this long after its last complete message...
    jitter_us: int = 2000  #: ...plus a pseudo-random 0..jitter_us
    warmup_fraction: float = 0.1  #: the first messages are intended before measure_start (not measured)
    seed: int = 1
    #: seconds per interval of the time axis, as the swarm records (0: none)
    interval_s: float = DEFAULT_INTERVAL_S

    def as_doc(self) -> ReplayConfigDoc:
        return {
            "deliveries": self.deliveries,
            "senders": self.senders,
            "receivers": self.receivers,
            "payload_bytes": self.payload_bytes,
            "chunk_bytes": self.chunk_bytes,
            "rate": self.rate,
            "base_latency_us": self.base_latency_us,
            "jitter_us": self.jitter_us,
            "warmup_fraction": self.warmup_fraction,
            "seed": self.seed,
            "interval_s": self.interval_s,
        }

    def __post_init__(self) -> None:
        if self.senders < 1 or self.receivers < 1:
            raise ValueError("--senders and --receivers must be at least 1")
        if self.deliveries < self.receivers:
            raise ValueError("--deliveries must be at least --receivers")
        if self.chunk_bytes < 1:
            raise ValueError("--chunk-bytes must be at least 1")
        if self.rate <= 0:
            raise ValueError("--rate must be positive")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError("--warmup-fraction must be in [0, 1)")
        if self.interval_s < 0:
            raise ValueError("--interval must be >= 0")

    @property
    def messages(self) -> int:
        """Messages in the stream every receiver gets."""
        return self.deliveries // self.receivers


@dataclass
class ReplayStream:
    """One receiver's stream, pre-chunked, with everything needed to check
    the replay's results exactly."""

    config: ReplayConfig
    chunks: list[bytes]
    now_ns: list[int]  #: receive time of each chunk
    sender_names: dict[int, str]
    own: int  #: the receivers' own sender id (they do not send)
    t0_ns: int  #: the first message's intended time: interval 0 starts there
    measure_start_ns: int
    messages: int
    measured: int  #: messages intended at or after measure_start_ns
    expected_histogram: LatencyHistogram  #: ONE receiver's latencies, recorded one by one
    sent: dict[int, int]  #: sender id -> messages sent
    stream_bytes: int


def make_stream(config: ReplayConfig, *, build_expected: bool = True) -> ReplayStream:
    """Build the stream (not timed: a few seconds for a million lines)."""
    rng = random.Random(config.seed)
    s = config.senders
    m_total = config.messages
    names = {cid: f"{NAME_PREFIX}{cid}" for cid in range(s)}
    own = s
    step_ns = int(1e9 / config.rate)
    t0 = 10**12 + rng.randrange(10**9)
    warm = int(m_total * config.warmup_fraction)
    measure_start = t0 + warm * step_ns
    payloads: dict[int, str] = {}
    parts: list[bytes] = []
    ends: list[int] = []  # byte offset just past each message's newline
    pos = 0
    for m in range(m_total):
        sender, seq = m % s, m // s
        key = (sender * 7 + seq) % 62
        payload = payloads.get(key)
        if payload is None:
            payload = payloads[key] = probe.make_payload(config.payload_bytes, sender, seq)
        line = protocol.encode_message(names[sender], probe.encode_probe(sender, seq, t0 + m * step_ns, payload))
        parts.append(line)
        pos += len(line)
        ends.append(pos)
    data = b"".join(parts)
    del parts
    chunks: list[bytes] = []
    now_ns: list[int] = []
    expected = LatencyHistogram()
    lo, hi = max(1, config.chunk_bytes // 2), max(1, config.chunk_bytes * 3 // 2)
    start = 0
    m_next = 0  # first message not completed yet
    while start < len(data):
        stop = min(len(data), start + rng.randint(lo, hi))
        chunks.append(data[start:stop])
        m_end = m_next
        while m_end < m_total and ends[m_end] <= stop:
            m_end += 1
        last_intended = t0 + (m_end - 1) * step_ns if m_end > 0 else t0
        now = last_intended + config.base_latency_us * 1000 + rng.randrange(config.jitter_us * 1000 + 1)
        now_ns.append(now)
        if build_expected:
            for m in range(max(m_next, warm), m_end):
                expected.record((now - (t0 + m * step_ns)) // 1000)
        m_next = m_end
        start = stop
    sent = {sender: (m_total - sender + s - 1) // s for sender in range(s)}
    return ReplayStream(
        config=config,
        chunks=chunks,
        now_ns=now_ns,
        sender_names=names,
        own=own,
        t0_ns=t0,
        measure_start_ns=measure_start,
        messages=m_total,
        measured=m_total - warm,
        expected_histogram=expected,
        sent=sent,
        stream_bytes=len(data),
    )


@dataclass
class ReplayResult:
    deliveries_expected: int
    delivered: int
    delivered_measured: int
    measured_expected: int
    histogram_count: int
    integrity: IntegrityCounts
    other_lines: int
    chunks: int
    lines: int
    blocks_fast: int  #: recv buffers that took the vectorised block path
    elapsed_s: float
    histogram: LatencyHistogram = field(repr=False)
    #: the interval histograms (every label merged), added up: the time axis' share
    intervals: LatencyHistogram | None = field(default=None, repr=False)
    interval_count: int = 0

    @property
    def per_s(self) -> float:
        return self.delivered / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def faults(self) -> int:
        return self.integrity.faults

    def as_dict(self) -> ReplayResultDoc:
        return {
            "deliveries_expected": self.deliveries_expected,
            "delivered": self.delivered,
            "delivered_measured": self.delivered_measured,
            "measured_expected": self.measured_expected,
            "histogram_count": self.histogram_count,
            "integrity": self.integrity.as_dict(),
            "other_lines": self.other_lines,
            "chunks": self.chunks,
            "lines": self.lines,
            "blocks_fast": self.blocks_fast,
            "elapsed_s": self.elapsed_s,
            "faults": self.faults,
            "per_s": round(self.per_s),
            "ns_per_delivery": round(1e9 / self.per_s, 1) if self.per_s else None,
            "histogram_summary": self.histogram.summary(),
        }


def run_replay(stream: ReplayStream) -> ReplayResult:
    """Feed every chunk to every receiver through the worker's per-recv code
    (the one receive path, :meth:`bench.net.rx.ReceivePath.take`, with the
    chat protocol's adapter); time only that."""
    cfg = stream.config
    adapter = wire.get("chat")
    rec = DeliveryRecorder(stream.sender_names, stream.measure_start_ns)
    take = ReceivePath(adapter, rec).take
    rxs = [(adapter.decoder(), IntegrityTracker(rec.fault_sink)) for _ in range(cfg.receivers)]
    reads = [Read(chunk, now) for chunk, now in zip(stream.chunks, stream.now_ns, strict=True)]
    own = stream.own
    closed: list[ClosedInterval] = []
    close_at = 1 << 63  # no time axis: never
    if cfg.interval_s > 0:  # as a swarm worker records: by interval, closed as the clock passes them
        rec.start_intervals(IntervalAxis.of(stream.t0_ns, cfg.interval_s))
        close_at = stream.t0_ns
    t0 = time.perf_counter()
    for read in reads:
        if read.arrival_ns >= close_at:
            closed += rec.close_intervals(read.arrival_ns - CLOSE_GRACE_NS)
            close_at = read.arrival_ns + HOUSEKEEPING_NS
        for decoder, tracker in rxs:
            take(decoder, tracker, own, read)
    if cfg.interval_s > 0:
        closed += rec.close_intervals(reads[-1].arrival_ns, final=True)
    elapsed = time.perf_counter() - t0
    other = rec.lines - rec.delivered_all  # every line of the stream is a probe: the rest were not taken
    counts = IntegrityCounts()
    for _, tracker in rxs:
        counts.add(tracker.finish(stream.sent, skip_sender=own))
    return ReplayResult(
        deliveries_expected=stream.messages * cfg.receivers,
        delivered=rec.delivered_all,
        delivered_measured=rec.delivered_measured,
        measured_expected=stream.measured * cfg.receivers,
        histogram_count=rec.hist.count,
        integrity=counts,
        other_lines=other,
        chunks=len(stream.chunks) * cfg.receivers,
        lines=rec.lines,
        blocks_fast=rec.blocks_fast,
        elapsed_s=elapsed,
        histogram=rec.hist,
        intervals=_added(closed) if cfg.interval_s > 0 else None,
        interval_count=len(closed),
    )


def _added(closed: list[ClosedInterval]) -> LatencyHistogram:
    """Every closed interval's histograms, added up."""
    total = LatencyHistogram()
    for part in closed:
        for encoded in part.labels.values():
            total.merge(encoded.decode())
    return total


def block_path_steps(stream: ReplayStream, buffers: int = 20, passes: int = 5) -> dict[str, float]:
    """Where the block path's time goes: ns per line of each step of
    :meth:`DeliveryRecorder.record_lines`'s block path (and the decoder before it),
    timed one by one over the stream's first ``buffers`` chunks, the median
    of ``passes`` passes.  Raises ValueError unless every one of those chunks
    takes the block path (use big chunks)."""
    import numpy as np

    from bench.measure import recorder

    chunks = list(zip(stream.chunks, stream.now_ns, strict=True))[:buffers]
    per_pass: list[dict[str, float]] = []
    for _ in range(passes):
        rec = DeliveryRecorder(stream.sender_names, stream.measure_start_ns)
        decoder, tracker = wire.get("chat").decoder(), IntegrityTracker()
        table = probeline.name_table(np, {sid: name.encode() for sid, name in stream.sender_names.items()})
        spent: dict[str, float] = {}
        lines = 0

        def lap(step: str, t0: float, spent: dict[str, float] = spent) -> float:
            t1 = time.perf_counter()
            spent[step] = spent.get(step, 0.0) + t1 - t0
            return t1

        for chunk, now in chunks:
            t = time.perf_counter()
            block = decoder.feed_block(chunk)
            t = lap("decoder (feed_block)", t)
            layout = probeline.line_layout(block, probe.PROBE_SPACES)
            t = lap("layout (line_layout)", t)
            probes = probe.parse_probe_block(block, layout) if layout is not None else None
            t = lap("fields and check (parse_probe_block)", t)
            if layout is None or probes is None or len(block) < recorder.BLOCK_MIN_BYTES:
                raise ValueError("a buffer did not take the block path: use bigger --chunk-bytes")
            if not probeline.names_match(np, block, layout.starts, probes.sender, table):
                raise ValueError("names do not match")
            t = lap("names", t)
            delivered = tracker.observe_block(probes.sender, probes.seq)
            t = lap("integrity (observe_block)", t)
            intended = probes.intended_ns if delivered is None else probes.intended_ns[delivered]
            measured = intended[intended >= stream.measure_start_ns]
            if len(measured):
                rec.hist.record_array((now - measured) // 1000)
            lap("histogram (record_array)", t)
            lines += len(layout.ends)
        per_pass.append({step: s / lines * 1e9 for step, s in spent.items()})
    steps = {step: statistics.median(p[step] for p in per_pass) for step in per_pass[0]}
    steps["total"] = sum(steps.values())
    return steps


def check(stream: ReplayStream, result: ReplayResult) -> list[str]:
    """What is wrong with a replay's results (empty when all is right)."""
    problems = []
    if result.delivered != result.deliveries_expected:
        problems.append(f"delivered {result.delivered} of {result.deliveries_expected}")
    if result.delivered_measured != result.measured_expected:
        problems.append(f"measured {result.delivered_measured} of {result.measured_expected}")
    if result.faults:
        problems.append(f"integrity faults: {result.integrity.as_dict()}")
    if result.other_lines:
        problems.append(f"{result.other_lines} lines not recognised as chat messages")
    if result.histogram_count != result.measured_expected:
        problems.append(f"histogram holds {result.histogram_count} values, expected {result.measured_expected}")
    expected = LatencyHistogram()
    for _ in range(stream.config.receivers):
        expected.merge(stream.expected_histogram)
    if expected.count and result.histogram.summary() != expected.summary():
        problems.append(f"histogram differs: {result.histogram.summary()} != {expected.summary()}")
    if result.intervals is not None and result.intervals.summary() != result.histogram.summary():
        problems.append(f"the intervals add up to {result.intervals.summary()}, not the run's histogram")
    return problems


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Replay benchmark of the swarm worker's receive path (line framing, probe parse and checksum, "
        "integrity check, latency histogram) on a generated stream of NAME: PROBE lines, cut into "
        "recv-sized chunks; no sockets.  Prints deliveries/s for one process."
    )
    d = ReplayConfig()
    ap = parser.add_argument_group("replay")
    ap.add_argument("--deliveries", type=int, default=d.deliveries, help="total deliveries")
    ap.add_argument("--senders", type=int, default=d.senders, help="senders in the stream")
    ap.add_argument("--receivers", type=int, default=d.receivers, help="receivers, each fed every chunk")
    ap.add_argument("--payload", type=int, default=d.payload_bytes, help="probe payload bytes")
    ap.add_argument(
        "--chunk-bytes",
        default=str(d.chunk_bytes),
        help="mean recv size; a comma list runs each (the worker asks for up to 262144)",
    )
    ap.add_argument("--repeat", type=int, default=3, help="runs per chunk size; the best is reported")
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument(
        "--interval",
        type=float,
        default=d.interval_s,
        help="seconds per interval of the time axis, recorded as the swarm does (0: one histogram, no axis)",
    )
    ap.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    ap.add_argument("--no-check", action="store_true", help="skip checking the results against the stream")
    ap.add_argument(
        "--steps",
        action="store_true",
        help="instead: time each step of the block path on the first 20 buffers (ns per line; needs big chunks)",
    )


def _configs(args: argparse.Namespace) -> list[ReplayConfig]:
    """One ReplayConfig per --chunk-bytes value (ValueError says what is wrong)."""
    if args.repeat < 1:
        raise ValueError("--repeat must be at least 1")
    sizes = [int(x) for x in str(args.chunk_bytes).split(",") if x.strip()]
    return [
        ReplayConfig(
            deliveries=args.deliveries,
            senders=args.senders,
            receivers=args.receivers,
            payload_bytes=args.payload,
            chunk_bytes=size,
            seed=args.seed,
            interval_s=args.interval,
        )
        for size in sizes
    ]


def _print_steps(configs: list[ReplayConfig]) -> None:
    for cfg in configs:
        steps = block_path_steps(make_stream(cfg, build_expected=False))
        print(f"block path, chunks of ~{cfg.chunk_bytes} bytes: ns per line (median of 5 passes)")
        for step, ns in steps.items():
            print(f"  {step:40s} {ns:7.1f}")


def _best_of(cfg: ReplayConfig, repeat: int, check_results: bool) -> tuple[ReplayRow, bool]:
    """The best of ``repeat`` replays as a table row, and whether any gave wrong results."""
    t = time.perf_counter()
    print(f"building stream: {cfg.messages:,} lines, chunks of ~{cfg.chunk_bytes} bytes ...", file=sys.stderr)
    stream = make_stream(cfg, build_expected=check_results)
    print(
        f"  built in {time.perf_counter() - t:.1f}s ({stream.stream_bytes / 2**20:.1f} MiB, "
        f"{len(stream.chunks):,} chunks x {cfg.receivers} receivers)",
        file=sys.stderr,
    )
    best: ReplayResult | None = None
    failed = False
    for i in range(repeat):
        result = run_replay(stream)
        print(f"  run {i + 1}/{repeat}: {result.per_s:,.0f} deliveries/s", file=sys.stderr)
        problems = check(stream, result) if check_results else []
        if problems:
            failed = True
            print("  WRONG RESULTS: " + "; ".join(problems), file=sys.stderr)
        if best is None or result.per_s > best.per_s:
            best = result
    assert best is not None
    row: ReplayRow = {
        "config": cfg.as_doc(),
        "lines_per_chunk": round(stream.messages / len(stream.chunks), 1),
        **best.as_dict(),
    }
    return row, failed


def _print_table(rows: list[ReplayRow]) -> None:
    print(
        f"{'chunk B':>8} {'lines/chunk':>11} {'block path':>10} {'deliveries':>11} {'deliveries/s':>13} "
        f"{'ns/delivery':>11} faults"
    )
    for row in rows:
        share = row["blocks_fast"] / row["chunks"] if row["chunks"] else 0.0
        print(
            f"{row['config']['chunk_bytes']:>8} {row['lines_per_chunk']:>11} {share:>10.0%} "
            f"{row['delivered']:>11,} {row['per_s']:>13,} {row['ns_per_delivery']:>11} {row['faults']}"
        )


def run(args: argparse.Namespace) -> int:
    configs = _configs(args)
    if args.steps:
        _print_steps(configs)
        return 0
    rows: list[ReplayRow] = []
    failed = False
    for cfg in configs:
        row, wrong = _best_of(cfg, args.repeat, not args.no_check)
        rows.append(row)
        failed |= wrong
    if args.json:
        document: ReplayDocument = {"kind": REPLAY_KIND, "runs": rows}
        print(json.dumps(document, indent=2))
    else:
        _print_table(rows)
    return 1 if failed else 0
