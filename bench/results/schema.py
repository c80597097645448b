"""The result documents as types mypy checks (the prose is ``docs/results.md``).

Every JSON document the harness writes or reads has one TypedDict here: a
swarm run, the index of a run set, the capacity search and the comparison.
``bench.swarm.run_swarm`` still builds its document as ``dict[str, Any]``;
:func:`as_run` is the one place that document becomes a :class:`RunDocument`
(a ``typing.cast``: the keys are checked by the tests, not at run time).
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict, cast

#: Bumped on any incompatible change to the swarm documents below.
SCHEMA_VERSION = 1
RUN_KIND = "chatbench.swarm.run"
INDEX_KIND = "chatbench.swarm.index"
INDEX_NAME = "index.json"
CAPACITY_KIND = "chatbench.capacity"
CAPACITY_JSON = "capacity.json"
CAPACITY_MD = "capacity.md"
#: capacity.json has its own version: it changes apart from the run documents.
CAPACITY_SCHEMA_VERSION = 1
COMPARE_KIND = "chatbench.compare"
COMPARE_JSON = "compare.json"
COMPARE_MD = "COMPARE.md"


# ---------------------------------------------------------------------------
# one run (run-cNNNNN.json)
# ---------------------------------------------------------------------------


class RunParameters(TypedDict):
    """Every ``SwarmConfig`` field plus the derived ones."""

    clients: int
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
    warmup_messages: int
    measured_messages: int
    senders_receive: bool


class Latency(TypedDict):
    count: int
    min_us: int | None
    mean_us: float | None
    p50_us: int | None
    p90_us: int | None
    p95_us: int | None
    p99_us: int | None
    p99_9_us: int | None
    max_us: int | None
    clamped: NotRequired[int]


class Connections(TypedDict):
    requested: int
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
    lines_received: NotRequired[int]
    bytes_received: NotRequired[int]


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
    faults: int
    pairs: NotRequired[list[IntegrityPair]]  #: absent in runs from before the per-pair counters


class ProcessSummary(TypedDict, total=False):
    cpu_percent_window: float | None
    runqueue_wait_percent_window: float | None
    cpu_percent_max: float | None
    rss_max_bytes: int | None
    threads_max: int | None


class ProcessResources(TypedDict):
    label: str
    pid: int
    samples: dict[str, list[float]]
    summary: ProcessSummary


class Resources(TypedDict):
    interval_s: float
    window_s: float
    window_t_s: list[float]
    server: ProcessResources | None
    workers: list[ProcessResources]
    harness_cpu_percent_window: float | None
    saturation_threshold_percent: float
    saturated_workers: list[str]


class Histogram(TypedDict):
    format: str
    unit: str
    data: str
    clamped: int


class RunDocument(TypedDict):
    """``run-cNNNNN.json``: one swarm run."""

    schema_version: int
    kind: str
    run_id: str
    label: str | None
    started_at: str
    parameters: RunParameters
    environment: dict[str, Any]  #: bench.results.machine.environment()
    target: dict[str, Any]  #: Target.describe(): its keys depend on the kind of target
    connections: Connections
    messages: Messages
    deliveries: Deliveries
    completed: bool
    latency_us: Latency
    send_lag_us: Latency
    rx_clock: NotRequired[str]  #: absent in runs from before the kernel clock: they timed the read
    receive_lag_us: NotRequired[Latency | None]
    integrity: Integrity
    resources: Resources
    load_generator_saturated: bool
    histogram: Histogram
    timing: dict[str, float]
    notes: list[str]


def server_summary(run: RunDocument) -> ProcessSummary:
    """The server's resource summary ({} when no server pid was known)."""
    server = run["resources"].get("server")
    return server.get("summary") or {} if server else {}


def as_run(doc: dict[str, Any]) -> RunDocument:
    """``run_swarm``'s ``dict[str, Any]`` seen as the run document it is."""
    return cast(RunDocument, doc)


# ---------------------------------------------------------------------------
# a run set (index.json)
# ---------------------------------------------------------------------------


class IndexSummary(TypedDict):
    p50_us: int | None
    p90_us: int | None
    p99_us: int | None
    p99_9_us: int | None
    max_us: int | None
    deliveries_per_s: float | None
    delivered_ratio: float | None
    faults: int
    failed_connections: int
    server_cpu_percent: float | None
    harness_cpu_percent: float | None
    load_generator_saturated: bool


class IndexEntry(TypedDict):
    clients: int
    file: str | None
    status: Literal["ok", "error"]
    summary: NotRequired[IndexSummary]
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
    parameters: dict[str, Any]  #: RunParameters without ``clients``
    runs: list[IndexEntry]


# ---------------------------------------------------------------------------
# capacity.json
# ---------------------------------------------------------------------------


class CapacityStep(TypedDict):
    clients: int
    passed: bool
    reasons: list[str]
    saturated: bool
    attempt: NotRequired[int]
    error: NotRequired[str | None]
    latency_only: NotRequired[bool]
    p50_us: NotRequired[int | None]
    p95_us: NotRequired[int | None]
    p99_us: NotRequired[int | None]
    max_us: NotRequired[int | None]
    delivered_ratio: NotRequired[float | None]
    deliveries_per_s: NotRequired[float | None]
    faults: NotRequired[int]
    failed_connections: NotRequired[int]


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
    search: dict[str, Any]  #: the SearchConfig's fields
    parameters: dict[str, Any]  #: RunParameters without ``clients``; ``senders`` as given
    searches: list[CapacitySearch]


# ---------------------------------------------------------------------------
# compare.json
# ---------------------------------------------------------------------------


class ComparePoint(TypedDict):
    clients: int
    status: Literal["ok", "error"]
    error: NotRequired[str | None]
    deliveries_per_s: NotRequired[float | None]
    delivered_ratio: NotRequired[float | None]
    p50_us: NotRequired[int | None]
    p99_us: NotRequired[int | None]
    max_us: NotRequired[int | None]
    faults: NotRequired[int]
    failed_connections: NotRequired[int]
    server_cpu_percent: NotRequired[float | None]
    server_rss_max_bytes: NotRequired[int | None]
    harness_cpu_percent: NotRequired[float | None]
    load_generator_saturated: NotRequired[bool]


class CompareSeries(TypedDict):
    target: dict[str, Any]  #: the describe() keys that tell servers apart
    points: list[ComparePoint]


class CompareRatio(TypedDict):
    clients: int
    deliveries_per_s: float | None
    p99: float | None


class CompareParameters(TypedDict):
    senders: int | str | None
    rate: float
    payload_bytes: int
    warmup_s: float
    duration_s: float


class CompareMeta(TypedDict):
    targets: list[str]
    created_at: str
    command: list[str]
    clients: list[int]
    parameters: CompareParameters
    quickack: bool
    flood_plan: str
    environment: dict[str, Any]


class CompareSummary(TypedDict):
    ours: str
    series: dict[str, CompareSeries]
    ratios: dict[str, list[CompareRatio]]


class CompareDocument(CompareSummary):
    """``compare.json``."""

    kind: str
    meta: CompareMeta
