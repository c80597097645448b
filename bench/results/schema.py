"""The result documents as types mypy checks (the prose is ``docs/results.md``).

Every result document the harness writes and others read has one TypedDict
here: a swarm run, the index of a run set, the capacity search and the
comparison.  Each part is built typed where it is measured: the histogram
summaries and resources in :mod:`bench.measure` (their types live in
:mod:`bench.measure.summaries`, the layer below, and are re-exported here),
``parameters`` by ``SwarmConfig.parameters()``, ``environment`` by
:func:`bench.results.machine.environment`, ``target`` by ``Target.describe()``,
and the whole run document by ``bench.swarm.document.build_document``.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

from bench.measure.summaries import Histogram as Histogram
from bench.measure.summaries import Latency as Latency
from bench.measure.summaries import ProcessResources as ProcessResources
from bench.measure.summaries import ProcessSamples as ProcessSamples
from bench.measure.summaries import ProcessSummary as ProcessSummary
from bench.measure.summaries import Resources as Resources
from bench.net.tls import TlsInfo
from bench.results.connschema import ChurnSection as ChurnSection
from bench.results.connschema import ConnectRateDocument as ConnectRateDocument
from bench.results.connschema import ConnectRateParameters as ConnectRateParameters
from bench.results.connschema import ConnectRateStep as ConnectRateStep
from bench.results.connschema import ConnectRateTarget as ConnectRateTarget
from bench.results.connschema import ConnectSteps as ConnectSteps
from bench.results.connschema import NoticeCheck as NoticeCheck
from bench.results.connschema import PhaseLatency as PhaseLatency
from bench.results.connschema import StormSection as StormSection
from bench.results.machine import Environment as Environment

#: Bumped on any incompatible change to the swarm documents below.
#: 2: per-label measurements (``labels``) replace the cluster's
#: ``latency_same_node_us`` / ``latency_cross_node_us`` and
#: ``deliveries.expected_same_node`` / ``expected_cross_node``.
SCHEMA_VERSION = 2
#: Versions the loaders read (older documents are upgraded as they load:
#: :func:`bench.results.store.load_run`).
READABLE_SCHEMA_VERSIONS = (1, 2)
RUN_KIND = "chatbench.swarm.run"
INDEX_KIND = "chatbench.swarm.index"
INDEX_NAME = "index.json"
CAPACITY_KIND = "chatbench.capacity"
CAPACITY_JSON = "capacity.json"
CAPACITY_MD = "capacity.md"
#: capacity.json has its own version: it changes apart from the run documents.
CAPACITY_SCHEMA_VERSION = 1
CONNECT_RATE_KIND = "chatbench.connect-rate"
CONNECT_RATE_JSON = "connect-rate.json"
CONNECT_RATE_MD = "connect-rate.md"
#: connect-rate.json has its own version.
CONNECT_RATE_SCHEMA_VERSION = 1
COMPARE_KIND = "chatbench.compare"
COMPARE_JSON = "compare.json"
COMPARE_MD = "COMPARE.md"


# ---------------------------------------------------------------------------
# one run (run-cNNNNN.json)
# ---------------------------------------------------------------------------


class WorkloadParameters(TypedDict):
    """``parameters.workload``: the workload of a run with rooms or drawn
    traffic (:class:`bench.workload.Workload`; absent: the one room, every
    message alike)."""

    scenario: str | None  #: the shipped scenario's name or the file's path; None: options only
    description: str
    summary: str  #: the workload in one line
    seed: int  #: every random draw of the plan and the timetable
    rooms: int | None  #: R as given (None: 1, or what fixed:M / uniform:A-B sizes needed)
    room_sizes: str
    rooms_per_client: int | None
    personal_rooms: bool
    senders_per_room: int | None
    publisher_skew: float  #: Zipf exponent of the streams' shares (0: equal)
    payload_sizes: str | None  #: a drawn payload distribution; None: ``payload_bytes`` each
    arrivals: str
    rate_mode: str  #: "total" or "per-room" (``rate`` per room)
    total_rate: float  #: messages/s over all streams


class ChurnParameters(TypedDict):
    """``parameters.churn``: membership over time (:class:`bench.workload.membership.Churn`;
    absent: everyone stays for the whole run)."""

    summary: str  #: in one line
    rate: float  #: --churn: seats per second that leave and are replaced
    mode: str  #: --churn-mode: quit, reset, mixed
    names: str  #: --churn-names: new or same
    storm_percent: float  #: --storm PCT@T
    storm_at_s: float
    reconnect: str  #: --reconnect: immediate or backoff
    backoff_base_s: float  #: --backoff BASE,CAP
    backoff_cap_s: float
    probe_rate: float  #: connect-and-leave connections per second (connect-rate)
    leave_grace_s: float  #: --leave-grace
    storm_node: int | None  #: --storm-node: a cluster's storm on one node


class SeriesParameters(TypedDict):
    """What the runs of a series share: :class:`RunParameters` without
    ``clients`` (``index.json``'s ``parameters``)."""

    senders: int
    dedicated_senders: bool
    stalled_clients: int
    stalled_rcvbuf: int
    rate: float
    messages: int | None
    duration_s: float
    warmup_s: float
    payload_bytes: int
    workers: int
    ramp_per_s: float
    connect_timeout_s: float
    drain_timeout_s: float
    sample_interval_s: float
    interval_s: NotRequired[float]  #: --interval: the time axis (absent before it)
    spin_us: int
    target: str
    protocol: str
    connect_batch: int | None
    quickack: bool
    rx_clock: str
    fanout: str | None
    send_queue_bytes: int | None
    server_args: list[str]
    server_pid: int | None
    label: str | None
    server_cpus: NotRequired[list[int] | None]  #: --server-cpus (absent in older runs)
    harness_cpus: NotRequired[list[int] | None]  #: --harness-cpus (absent in older runs)
    warmup_messages: int
    measured_messages: int
    senders_receive: bool
    workload: NotRequired[WorkloadParameters]  #: absent: the one room (the run without workload options)
    churn: NotRequired[ChurnParameters]  #: absent: everyone stays for the whole run
    transport: NotRequired[str]  #: ``plain`` or ``tls`` (absent in older runs: plain)
    tls: NotRequired[TlsInfo | None]  #: the clients' TLS settings (--tls)
    logins: NotRequired[str | None]  #: who the clients log in as (never a password)


class RunParameters(SeriesParameters):
    """Every ``SwarmConfig`` field plus the derived ones (``clients`` first in the JSON)."""

    clients: int


class TargetInfo(TypedDict):
    """``Target.describe()``: what was measured.  Every target has the first
    four keys; the others depend on its kind (``docs/results.md``)."""

    kind: str
    protocol: str
    address: str
    pid: int | None
    command: NotRequired[list[str]]  #: started servers (ProcessTarget)
    stderr_lines: NotRequired[int]
    stderr_tail: NotRequired[list[str]]
    exit_code: NotRequired[int | None]
    server_options: NotRequired[list[str]]  #: embedded: what the harness passed
    effective_options: NotRequired[dict[str, str]]  #: embedded: every setting the server logged
    version: NotRequired[str | None]  #: ngircd, miniircd
    flood_control: NotRequired[str]  #: ngircd, miniircd
    config: NotRequired[list[str]]  #: ngircd, brokers: the config file's lines
    faults_logged: NotRequired[list[str]]  #: brokers: log lines where the broker cut off or refused a client
    addresses: NotRequired[list[str]]  #: cluster:N: every node's address
    nodes: NotRequired[list[TargetInfo]]  #: cluster:N: each node as a target
    redis: NotRequired[TargetInfo]  #: cluster:N: the backplane's redis-server
    pid_check: NotRequired[str]  #: HOST:PORT with --server-pid: why the pid could not be checked
    #: started by the harness: ``plain`` or ``tls``, and who may log in (never a password)
    security: NotRequired[str]


class Connections(TypedDict):
    requested: int  #: --clients + --stalled-clients
    #: connections opened only to send (--dedicated-senders; always for Redis): besides ``requested``
    dedicated_senders: NotRequired[int]
    registered: int
    receivers: int
    senders: int
    stalled: int
    failed: int
    failures: dict[str, int]
    disconnected_during_run: NotRequired[int]
    disconnect_reasons: NotRequired[dict[str, int]]


class Messages(TypedDict):
    scheduled: int
    warmup: int
    sent: int
    measured_sent: int
    unsent: int
    unsent_bytes: NotRequired[int]


class Deliveries(TypedDict):
    expected: int
    delivered: int
    delivered_ratio: float | None
    per_s: float | None
    offered_per_s: float | None
    span_s: NotRequired[float]
    expected_all: int
    delivered_all: int
    echoes: NotRequired[int]
    #: measured deliveries of a stream to a receiver outside its audience (absent before version 2)
    strays: NotRequired[int]
    lines_received: NotRequired[int]
    bytes_received: NotRequired[int]
    #: with churn: deliveries at churned seats that were not owed (counted in
    #: ``delivered``, not in ``delivered_ratio``)
    boundary: NotRequired[int]


class IntegrityPair(TypedDict):
    """The counters of one (receiver, sender) pair that had a fault; sender
    -1: damaged probes whose sender could not be read."""

    receiver: int
    sender: int
    lost: int
    duplicated: int
    reordered: int
    corrupted: int


class Integrity(TypedDict):
    lost: int
    duplicated: int
    reordered: int
    corrupted: int
    #: a run of several rooms: deliveries of a stream to a receiver not in its room (counted in ``faults``)
    strays: NotRequired[int]
    faults: int
    pairs: NotRequired[list[IntegrityPair]]  #: absent in runs from before the per-pair counters


class LabelSection(TypedDict):
    """One label of a run (:mod:`bench.workload.labels`): its share of the
    deliveries, latency and integrity.  The run's overall figures are the
    labels' sums (``latency_us`` their histograms' exact merge)."""

    label: str  #: the key, ``dim=value,dim=value``
    values: dict[str, str]  #: the key's dimensions and values
    expected: int  #: measured deliveries the plan's audience owed under this label
    delivered: int
    latency_us: Latency
    integrity: Integrity  #: of its (receiver, stream) pairs
    histogram: NotRequired[Histogram]  #: absent in documents upgraded from version 1


class RoomSizeCount(TypedDict):
    """How many rooms of a run have one size (receiving members)."""

    size: int
    rooms: int


class RoomBucket(TypedDict):
    """The rooms of one ``room_size`` label value (a decade of sizes)."""

    bucket: str  #: ``1-9``, ``10-99``, ...
    rooms: int
    members: int  #: memberships of receivers in those rooms
    streams: int  #: streams said in them


class RoomsSection(TypedDict):
    """``rooms``: the plan's rooms (a run of several rooms; absent with one)."""

    rooms: int
    streams: int
    sending_clients: int
    memberships: int  #: receivers x their rooms
    smallest: int
    largest: int
    sizes: list[RoomSizeCount]  #: every size, ascending: the histogram of room sizes
    buckets: list[RoomBucket]


class IntervalLabel(TypedDict):
    """One label's share of one interval (runs with labels only)."""

    label: str
    delivered: int
    latency_us: Latency
    histogram: NotRequired[Histogram]  #: in the document; not in the live records


class IntervalSection(TypedDict):
    """One interval of a run's time axis (:mod:`bench.measure.intervals`):
    the deliveries that *arrived* in it, and the messages *intended* in it.
    Live records (JSON lines, the live view) have ``sent`` and ``lost`` None
    and no histograms: they are known when the run ends."""

    index: int
    start_s: float  #: seconds after the first intended send (interval 0 starts there)
    length_s: float  #: the interval length; the last one may be shorter
    phase: str  #: warmup (it starts before the measured messages), measured, drain (after the last send)
    delivered: int  #: measured deliveries that arrived in it (its histogram's count)
    delivered_all: int  #: intact deliveries that arrived in it, warm-up included
    per_s: float  #: delivered_all / length_s
    scheduled: int  #: messages the timetable intended in it
    sent: int | None  #: of those, handed to the kernel
    owed: int  #: deliveries the plan's audience is owed by the messages sent (live: scheduled) in it
    lost: int | None  #: deliveries of messages intended in it that never arrived
    duplicated: int  #: faults seen in it
    reordered: int
    corrupted: int
    late_reads: int  #: reads recorded in it although stamped in an earlier, closed interval
    disconnects: int  #: receivers the server disconnected in it
    latency_us: Latency
    receive_lag_us: Latency | None  #: the harness's read lag of the reads made in it
    server_cpu_percent: float | None  #: mean of the samples taken in it
    server_rss_bytes: int | None  #: largest sample in it
    harness_cpu_percent: float | None  #: the load generator's processes, summed
    histogram: NotRequired[Histogram]  #: every label merged; in the document, not in live records
    labels: NotRequired[list[IntervalLabel]]


class IntervalSeries(TypedDict):
    """``intervals``: the run over time.  The histograms are also written, in
    HdrHistogram's interval-log form, to the ``.hlog`` file beside the document."""

    interval_s: float
    assigned_by: str  #: "arrival": a delivery is counted in the interval it arrived in
    origin_unix_s: float  #: wall-clock time (Unix seconds) of interval 0's start: the first intended send
    warmup_s: float  #: when the measured messages begin (seconds on the same axis)
    send_end_s: float  #: the last intended send
    hlog: NotRequired[str]  #: the interval log's file name, beside the document
    intervals: list[IntervalSection]


class ThresholdResult(TypedDict):
    """One ``--threshold`` checked at the end of a run (:mod:`bench.measure.thresholds`)."""

    threshold: str
    ok: bool
    value: float | None  #: what was measured, in the threshold's unit (None: nothing to measure)
    abort_on_fail: bool
    aborted: bool  #: the run was stopped when it was crossed


class RunDocument(TypedDict):
    """``run-cNNNNN.json``: one swarm run."""

    schema_version: int
    kind: str
    run_id: str
    label: str | None
    started_at: str
    parameters: RunParameters
    environment: Environment
    target: TargetInfo
    connections: Connections
    messages: Messages
    deliveries: Deliveries
    completed: bool
    latency_us: Latency
    #: per label; empty when no label dimension applies to the run
    labels: list[LabelSection]
    rooms: NotRequired[RoomsSection]  #: a run of several rooms: their sizes
    send_lag_us: Latency
    rx_clock: NotRequired[str]  #: absent in runs from before the kernel clock: they timed the read
    receive_lag_us: NotRequired[Latency | None]
    #: measured deliveries that shared a read with a later one (absent in older runs)
    shared_reads: NotRequired[int]
    integrity: Integrity
    resources: Resources
    load_generator_saturated: bool
    histogram: Histogram
    timing: dict[str, float]
    notes: list[str]
    intervals: NotRequired[IntervalSeries]  #: the run over time (absent before the time axis)
    thresholds: NotRequired[list[ThresholdResult]]  #: --threshold, when given
    connects: NotRequired[dict[str, ConnectSteps]]  #: setup latencies by kind (absent in older runs)
    churn: NotRequired[ChurnSection]  #: with --churn, --storm or probes
    storm: NotRequired[StormSection]  #: with --storm


def server_summary(run: RunDocument) -> ProcessSummary:
    """The server's resource summary ({} when no server pid was known)."""
    server = run["resources"].get("server")
    return server.get("summary") or {} if server else {}


# ---------------------------------------------------------------------------
# a run set (index.json)
# ---------------------------------------------------------------------------


class RunSummary(TypedDict, total=False):
    """One run's headline numbers, picked in one place
    (:func:`bench.results.summary.run_summary`) for the index, the capacity
    steps, the comparison's points and the flat rows.  Every key is there in
    what this code writes; older documents may lack the newer ones (``p95_us``)."""

    p50_us: int | None
    p90_us: int | None
    p95_us: int | None
    p99_us: int | None
    p99_9_us: int | None
    max_us: int | None
    deliveries_per_s: float | None
    #: delivered / expected (each target's own expectation: who hears whom differs)
    delivered_ratio: float | None
    faults: int
    failed_connections: int
    server_cpu_percent: float | None
    server_rss_max_bytes: int | None
    harness_cpu_percent: float | None
    load_generator_saturated: bool


class IndexEntry(TypedDict):
    clients: int
    file: str | None
    status: Literal["ok", "error"]
    summary: NotRequired[RunSummary]
    error: NotRequired[str]


class Sweep(TypedDict):
    variable: str
    values: list[int]


class IndexDocument(TypedDict):
    """``index.json``: one series (a strategy or a target) of runs."""

    schema_version: int
    kind: str
    created_at: str
    command: list[str] | None
    sweep: Sweep
    parameters: SeriesParameters
    #: where the series ran, collected once when it started (absent in older indexes)
    environment: NotRequired[Environment]
    runs: list[IndexEntry]


# ---------------------------------------------------------------------------
# capacity.json
# ---------------------------------------------------------------------------


class CapacityStep(RunSummary):
    """One step of a search: the run's summary (none for a run that failed), and the verdict."""

    clients: int
    passed: bool
    reasons: list[str]
    #: the same as the summary's ``load_generator_saturated`` (False for a failed run)
    saturated: bool
    attempt: NotRequired[int]
    error: NotRequired[str | None]
    latency_only: NotRequired[bool]


class CapacityResult(TypedDict):
    largest_passing: int | None
    smallest_failing: int | None
    why: list[str]
    reached_max_clients: bool
    load_generator_saturated_at_limit: bool
    summary: str


class CapacityFound(TypedDict):
    """What one search returns."""

    steps: list[CapacityStep]
    result: CapacityResult


class CapacitySearch(CapacityFound):
    """One search in capacity.json: a strategy or a target."""

    label: str
    directory: str


class CapacityCriteria(TypedDict):
    p95_bound_ms: float
    fail_on: list[str]


class CapacityDocument(TypedDict):
    """``capacity.json``."""

    schema_version: int
    kind: str
    created_at: str
    command: list[str] | None
    criteria: CapacityCriteria
    #: The SearchConfig's fields, and RunParameters without ``clients`` (``senders`` as
    #: given): still untyped, as bench/studies/capacity.py builds them (asdict, a dict).
    search: dict[str, Any]
    parameters: dict[str, Any]
    searches: list[CapacitySearch]


# ---------------------------------------------------------------------------
# compare.json
# ---------------------------------------------------------------------------


class ComparePoint(RunSummary):
    """One target at one client count: the run's summary (or the median of
    --repeat's runs), none for a point that failed."""

    clients: int
    status: Literal["ok", "error"]
    error: NotRequired[str | None]
    #: --repeat N: the point is the median of ``runs`` runs that finished (of ``runs + failed_runs``)
    runs: NotRequired[int]
    failed_runs: NotRequired[int]
    spread: NotRequired[PointSpread]


class PointSpread(TypedDict, total=False):
    """--repeat N: [min, max] over a point's runs, beside the median in :class:`ComparePoint`."""

    deliveries_per_s: list[float]
    delivered_ratio: list[float]
    p50_us: list[float]
    p99_us: list[float]
    server_cpu_percent: list[float]


class CompareSeries(TypedDict):
    #: The TargetInfo keys that tell servers apart; untyped as report/compare.py picks them.
    target: dict[str, Any]
    points: list[ComparePoint]


class CompareRatio(TypedDict):
    clients: int
    #: ours / peer of the delivered FRACTIONS (``delivered_ratio``), not of deliveries/s: targets
    #: differ in who hears whom (a Redis publisher hears its own message), so their counts differ
    delivered: float | None
    p99: float | None
    #: --repeat N: [lowest, highest] ratio any two runs give (ours min / peer max, ours max / peer min)
    delivered_spread: NotRequired[list[float] | None]
    p99_spread: NotRequired[list[float] | None]


class CompareParameters(TypedDict):
    senders: int | str | None
    rate: float
    payload_bytes: int
    warmup_s: float
    duration_s: float
    workload: NotRequired[WorkloadParameters]  #: a workload of rooms or drawn traffic (absent: one room)


class CompareMeta(TypedDict):
    targets: list[str]
    created_at: str
    command: list[str]
    clients: list[int]
    parameters: CompareParameters
    quickack: bool
    flood_plan: str
    environment: Environment
    repeat: NotRequired[int]  #: runs per target and client count, interleaved
    quickack_targets: NotRequired[list[str]]  #: the targets whose receivers ACKed at once
    server_cpus: NotRequired[list[int] | None]  #: --server-cpus
    harness_cpus: NotRequired[list[int] | None]  #: --harness-cpus


class CompareSummary(TypedDict):
    ours: str
    series: dict[str, CompareSeries]
    ratios: dict[str, list[CompareRatio]]


class CompareDocument(CompareSummary):
    """``compare.json``."""

    kind: str
    meta: CompareMeta
