"""What the parent and its worker processes say to each other.

Every message is a frozen dataclass with named fields, pickled over a
:class:`multiprocessing.connection.Connection`.  :data:`Command` goes from
the parent to a worker, :data:`Report` back; a worker handles each command by
a dispatch table keyed by its type (:mod:`bench.swarm.worker`), and the
parent waits for one report type from every worker
(:meth:`bench.swarm.pool.WorkerPool.gather`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.measure.integrity import IntegrityCounts
from bench.measure.intervals import IntervalCounts
from bench.measure.labelled import EncodedHistogram
from bench.swarm.plan import Schedule

# -- parent -> worker ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stall:
    """Open the stalled clients (register, then never read); answer :class:`Stalled`."""


@dataclass(frozen=True, slots=True)
class Settle:
    """Say when bytes last arrived on any connection; answer :class:`Quiet`."""


@dataclass(frozen=True, slots=True)
class Start:
    """Run this timetable: senders send, receivers measure; :class:`Progress` follows."""

    schedule: Schedule


@dataclass(frozen=True, slots=True)
class Release:
    """Close the stalled clients."""


@dataclass(frozen=True, slots=True)
class StopSending:
    """Stop writing; answer :class:`Sent`."""


@dataclass(frozen=True, slots=True)
class Finish:
    """Every stream's final count (stream id -> messages handed to the kernel):
    compute the integrity counters and answer :class:`Result`."""

    sent: dict[int, int]


@dataclass(frozen=True, slots=True)
class Exit:
    """Close every socket and end the process."""


Command = Stall | Settle | Start | Release | StopSending | Finish | Exit

# -- worker -> parent ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Progress:
    """A few times a second while traffic runs (zeros before the first)."""

    t_ns: int = 0
    delivered: int = 0
    expected: int = 0
    sent: int = 0
    pending: int = 0  #: messages live senders still have to hand to the kernel
    disconnects: int = 0


@dataclass(frozen=True, slots=True)
class SetupTimes:
    """How long a worker's connections took to open (µs histograms, merged
    exactly by the parent): ``connect()`` to TCP up, the TLS handshake
    (ClientHello to the server's Finished; full and resumed apart), and TCP
    or TLS up to registered.  ``tls``: what was negotiated -> connections."""

    connect: EncodedHistogram
    tls_full: EncodedHistogram
    tls_resumed: EncodedHistogram
    register: EncodedHistogram
    tls: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Ready:
    """Every connection of the worker's share is registered or has failed."""

    registered: list[int]  #: client ids
    failures: dict[str, int]  #: reason -> count
    setup: SetupTimes | None = None  #: the connections' setup times


@dataclass(frozen=True, slots=True)
class Stalled:
    """The stalled clients are connected; failures are cumulative."""

    count: int
    failures: dict[str, int]


@dataclass(frozen=True, slots=True)
class Quiet:
    """When the worker last received anything (monotonic ns; 0: never), and
    how many bytes it has received so far."""

    last_rx_ns: int
    bytes_in: int


@dataclass(frozen=True, slots=True)
class Sent:
    """Per stream id: messages fully handed to the kernel, and how many of
    them are measured; bytes still buffered."""

    sent: dict[int, int]
    measured: dict[int, int]
    unsent_bytes: int


@dataclass(frozen=True, slots=True)
class Interval:
    """One closed interval of the run's time axis (:mod:`bench.measure.intervals`),
    sent as soon as it closes: every worker sends every interval from 0 on, in
    order, empty ones too, so the parent knows when it has all of one."""

    worker: int
    index: int
    #: label key -> the latencies of its deliveries that arrived in the interval
    #: (labels without any left out); the run's histograms are their sums
    labels: dict[str, EncodedHistogram]
    counts: IntervalCounts
    receive_lag: EncodedHistogram  #: the harness's read lag of the reads made in it


@dataclass(frozen=True, slots=True)
class LabelResult:
    """One label's share of a worker's measurements (:mod:`bench.workload.labels`)."""

    latency: EncodedHistogram  #: its measured deliveries' latencies
    #: the integrity counters of its (receiver, stream) pairs (damaged probes
    #: whose stream cannot be read count only in :attr:`Result.integrity`)
    integrity: IntegrityCounts


@dataclass(frozen=True, slots=True)
class Result:
    """One worker's measurements (histograms HDR-encoded, merged exactly by the parent)."""

    worker: int
    #: label key -> its measurements; the worker's latency histogram is their merge
    labels: dict[str, LabelResult]
    send_lag: EncodedHistogram
    receive_lag: EncodedHistogram
    rx_clock: str
    unstamped_reads: int
    delivered_all: int
    delivered_measured: int
    last_measured_recv_ns: int
    integrity: IntegrityCounts
    echoes: int
    lines: int
    bytes_in: int
    disconnects: dict[str, int] = field(default_factory=dict)
    receivers: int = 0
    #: (receiver id, stream id) -> counters, only the pairs with a fault
    by_pair: dict[tuple[int, int], IntegrityCounts] = field(default_factory=dict)
    #: measured deliveries of a stream to a receiver outside its audience
    strays: int = 0
    #: interval -> deliveries lost, by when the lost message was intended
    lost_by_interval: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Failed:
    """The worker raised: its traceback (it exits after sending this)."""

    worker: int
    traceback: str


Report = Progress | Interval | Ready | Stalled | Quiet | Sent | Result | Failed
