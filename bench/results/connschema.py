"""The result types of connections over time (part of :mod:`bench.results.schema`,
which re-exports them): a run's ``connects``, ``churn`` and ``storm`` sections,
and the connect-rate study's document (``docs/results.md``, *Churn and storms*)."""

from __future__ import annotations

from typing import NotRequired, TypedDict

from bench.measure.summaries import Histogram, Latency
from bench.net.tls import TlsInfo
from bench.results.machine import Environment


class ConnectSteps(TypedDict):
    """``connects.KIND``: how long one kind of connection took to set up
    (:mod:`bench.measure.connects`): from ``connect()`` to TCP up, the TLS
    handshake (None in plaintext; full and resumed also apart), then to its
    registration confirmed."""

    count: int
    tcp_us: Latency
    tls_us: Latency | None  #: every handshake
    tls_full_us: Latency | None
    tls_resumed_us: Latency | None
    registration_us: Latency
    total_us: Latency
    #: what TLS negotiated ("TLSv1.3 TLS_AES_256_GCM_SHA384") -> connections (empty in plaintext)
    tls: dict[str, int]
    histogram: Histogram  #: of ``total_us``


class NoticeCheck(TypedDict):
    """``churn.notices``: the server's join and leave notices seen by the
    steady receivers, against the joins and leaves the harness made."""

    notices: str  #: what the server says (the protocol's notices)
    receivers: int  #: steady receivers counting
    joins_expected: int  #: joins made x receivers
    joins_seen: int
    leaves_expected: int
    leaves_seen: int


class ChurnSection(TypedDict):
    """``churn``: membership over time (``docs/results.md``, *Churn and storms*):
    what the harness did, what the server answered, and what the churned
    seats' connections were owed and got while they were in."""

    leave_grace_s: float  #: messages intended within this before a leave are not owed to the leaver
    leaves: dict[str, int]  #: churn leaves of registered connections, by mode
    replaced: int  #: churn replacements registered
    skipped: int  #: churn leaves not made: the seat was still connecting
    attempts: dict[str, int]  #: connection attempts by kind (churn, storm, probe)
    failures: dict[str, dict[str, int]]  #: kind -> reason -> failed attempts
    failed: int  #: every failed attempt
    probes: int  #: connect-rate probes registered
    memberships: int  #: connections of churned seats accounted
    owed: int  #: deliveries owed to them while they were in
    lost: int
    at_leave: int  #: in flight when they left (not lost)
    arrived: int  #: first arrivals, owed or at a boundary
    boundary: int  #: arrivals not owed: before the join was confirmed, in the grace before the leave
    owed_measured: int  #: of the measured messages (in ``deliveries.expected``)
    lost_measured: int
    joins_made: int  #: registrations during traffic (the join notices owed to each steady receiver)
    leaves_made: int  #: leaves of registered connections sent during traffic
    notices: NoticeCheck | None  #: None: the server has no join/leave notices


class PhaseLatency(TypedDict):
    """The steady receivers' latency in one phase of a storm (whole intervals)."""

    start_s: float  #: on the run's time axis
    end_s: float
    intervals: int
    latency_us: Latency


class StormSection(TypedDict):
    """``storm``: a reconnect storm (``--storm PCT@T``)."""

    at_s: float  #: when it was made (seconds on the run's time axis)
    percent: float
    mode: str  #: how the connections left
    reconnect: str  #: the policy they came back by
    seats: int  #: seats in the storm
    dropped: int  #: connections it dropped (the others' seats were not connected)
    back: int  #: seats registered again
    not_back: int
    time_to_all_s: float | None  #: the storm to the last seat back (None: not all came back)
    time_to_register_us: Latency  #: per seat: its drop to registered again, retries included
    attempts: int
    failures: dict[str, int]  #: reason -> failed attempts (refusals, timeouts, resets)
    #: the steady receivers' latency before, during (the storm to the last seat
    #: back, or the end) and after it, from the intervals
    steady: dict[str, PhaseLatency]


# ---------------------------------------------------------------------------
# a connect-rate study (connect-rate.json)
# ---------------------------------------------------------------------------


class ConnectRateStep(TypedDict):
    """One offered rate of new connections against one target."""

    rate: float  #: connections per second offered (each registers, then leaves at once)
    achieved_per_s: float  #: registered per second over the step
    attempts: int
    registered: int
    failures: dict[str, int]  #: reason -> attempts that failed
    tcp_us: Latency
    tls_us: Latency | None  #: the TLS handshake (--tls); None: plaintext
    tls_resumed: NotRequired[int]  #: of the registered, those whose handshake was resumed (--tls-resume)
    registration_us: Latency
    total_us: Latency
    steady_p99_us: int | None  #: the p99 the steady clients saw meanwhile
    server_cpu_percent: float | None
    harness_cpu_percent: float | None
    load_generator_saturated: bool
    passed: bool
    why: list[str]  #: why it failed (empty: it passed)
    file: str | None  #: its run document, relative to the study's directory
    error: NotRequired[str]  #: the run could not be carried out


class ConnectRateTarget(TypedDict):
    target: str
    protocol: str
    registration: str  #: what "registered" means on this protocol
    capacity_per_s: float | None  #: the highest rate that passed (None: not even the first)
    steps: list[ConnectRateStep]


class ConnectRateParameters(TypedDict):
    p99_bound_ms: float
    start: float
    factor: float
    max_rate: float
    step_duration_s: float
    clients: int  #: steady clients connected meanwhile
    rate: float  #: their messages per second
    mode: str  #: how each new connection leaves: quit, reset, mixed
    transport: NotRequired[str]  #: ``plain`` or ``tls`` (--tls; absent in older studies: plain)
    tls: NotRequired[TlsInfo | None]  #: the clients' TLS settings
    logins: NotRequired[str | None]  #: who the clients log in as (never a password)


class ConnectRateDocument(TypedDict):
    """``connect-rate.json``: new connections per second each target takes
    within a bound on their connect latency (:mod:`bench.studies.connectrate`)."""

    schema_version: int
    kind: str
    created: str
    parameters: ConnectRateParameters
    environment: Environment
    command: list[str]
    targets: list[ConnectRateTarget]
