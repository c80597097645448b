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

from bench.measure.connects import EncodedConnects
from bench.measure.integrity import IntegrityCounts, Window
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
class Ready:
    """Every connection of the worker's share is registered or has failed."""

    registered: list[int]  #: client ids
    failures: dict[str, int]  #: reason -> count


@dataclass(frozen=True, slots=True)
class Stalled:
    """The stalled clients are connected; failures are cumulative."""

    count: int
    failures: dict[str, int]


@dataclass(frozen=True, slots=True)
class Quiet:
    """When the worker last received anything (monotonic ns; 0: never), and
    how many bytes it has received so far; with churn, how many of its
    connections are still connecting or leaving."""

    last_rx_ns: int
    bytes_in: int
    churning: int = 0


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
class ChurnReport:
    """One worker's membership over time (:mod:`bench.swarm.churn`): what it
    did, what the server answered, what its churned seats were owed."""

    leaves: dict[str, int]  #: churn leaves of registered connections, by mode (quit, reset)
    replaced: int  #: churn replacements registered
    skipped: int  #: churn leaves not made: the seat was still connecting
    storm_seats: int  #: this worker's seats in the storm
    storm_left: int  #: of them, connections the storm dropped (the others were not connected)
    storm_back: int  #: storm seats registered again
    storm_at_ns: int  #: when the storm was made (0: no storm here)
    storm_last_back_ns: int  #: when the last of them was registered again (0: none)
    #: storm seats: from the drop to registered again, retries and backoff included (us)
    time_to_register: EncodedHistogram
    attempts: dict[str, int]  #: connection attempts by kind (churn, storm, probe)
    failures: dict[str, dict[str, int]]  #: kind -> reason -> failed attempts
    probes: int  #: probe connections registered
    window: Window  #: the churned seats' memberships, summed
    #: label key -> (its memberships' windows, its integrity counters)
    labels: dict[str, tuple[Window, IntegrityCounts]]
    integrity: IntegrityCounts  #: the churned seats' memberships' counters
    by_pair: dict[tuple[int, int], IntegrityCounts]  #: (seat, stream) -> counters, pairs with a fault
    lost_by_interval: dict[int, int]  #: interval -> deliveries lost to churned seats
    memberships: int  #: memberships accounted (connections of churned seats)
    joins_made: int  #: registrations during traffic (churn, storm, probes): the notices owed
    leaves_made: int  #: leaves of registered connections sent during traffic
    notice_receivers: int  #: steady receivers whose notices are counted
    notice_joins: int  #: join notices they saw, of this run's churning names
    notice_leaves: int  #: leave notices they saw


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
    #: measured deliveries that shared a read with a later one (DeliveryRecorder.shared_reads)
    shared_reads: int = 0
    #: interval -> deliveries lost, by when the lost message was intended
    lost_by_interval: dict[int, int] = field(default_factory=dict)
    #: setup latencies by kind of connection (initial; churn, storm, probe)
    connects: dict[str, EncodedConnects] = field(default_factory=dict)
    churn: ChurnReport | None = None  #: membership over time (churn, a storm, probes)


@dataclass(frozen=True, slots=True)
class Failed:
    """The worker raised: its traceback (it exits after sending this)."""

    worker: int
    traceback: str


Report = Progress | Interval | Ready | Stalled | Quiet | Sent | Result | Failed
