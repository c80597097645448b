"""The fault-injecting relay's schedule: what it will do to which message, decided
in advance from a seed, and the file it writes for the check to read.

No sockets here: :class:`FaultOptions` (the relay's command line),
:func:`plan_faults` (the seeded choice of dropped, duplicated, swapped and
corrupted deliveries), :class:`DelayModel` (when each message is due at its
receivers) and the schedule file's layout (:class:`ScheduleFile`), shared by
the relay (:mod:`bench.targets.faultrelay`) and the check
(:mod:`bench.studies.selftest`).

Messages are named by the probe's ``(sender, seq)``; receivers by their
harness client id, the number the swarm's names end in (``cbTAG-17`` is 17).
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass
from typing import TypedDict

#: ``FaultOptions.ids`` choices.
ID_MODES = ("name", "arrival")
#: The four per-delivery faults.
FAULT_KINDS = ("drop", "duplicate", "swap", "corrupt")
#: Faults are put on sequence numbers this far apart, so that no two of them
#: touch the same message or a swapped pair's partner.
FAULT_SPACING = 3
#: A harness client's id: the number its name ends in (``bench.swarm.plan``'s names).
CLIENT_ID = re.compile(r"-(\d+)$")


def client_id(name: str) -> int | None:
    """The harness client id in a chat name, or ``None``."""
    m = CLIENT_ID.search(name)
    return int(m[1]) if m else None


@dataclass(frozen=True)
class FaultOptions:
    """What the relay injects.  Times in milliseconds."""

    seed: int = 1
    senders: int = 1  #: sender ids 0..senders-1 (the swarm's first clients)
    clients: int = 2  #: receiver ids 0..clients-1
    seq_lo: int = 0  #: faults go on sequence numbers in [seq_lo, seq_hi)
    seq_hi: int = 0
    drop: int = 0
    duplicate: int = 0
    swap: int = 0
    corrupt: int = 0
    delay_ms: float = 0.0  #: every delivery due this long after its intended send time
    uniform_ms: tuple[float, float] | None = None  #: plus a seeded uniform delay in [lo, hi]
    stall_every_ms: float = 0.0  #: every this often (0: never) ...
    stall_ms: float = 0.0  #: ... hold all deliveries this long (due times in the window move to its end)
    #: or once (0: never): hold all deliveries ``stall_ms`` from this long after the
    #: timetable's first intended send on (the swarm's interval 0 starts there)
    stall_at_ms: float = 0.0
    disconnect: int | None = None  #: receiver id the relay disconnects ...
    disconnect_after: int = 0  #: ... once it has delivered this many probes to it
    pause_sender: int | None = None  #: sender id the relay stops reading from ...
    pause_at_ms: float = 0.0  #: ... this long after its first probe ...
    pause_ms: float = 0.0  #: ... for this long
    #: The swarm's total send rate (messages/s; 0: unknown).  With it the relay
    #: checks every probe's intended time against the open-loop timetable
    #: (:class:`Timetable`), which it knows independently of the probes.
    rate: float = 0.0
    #: How senders and receivers are numbered: ``name`` (the swarm's: the
    #: client id in the name, the probe's sender field) or ``arrival``
    #: (receivers in registration order, senders in order of their first
    #: probe: clients whose names and ids carry no index, the Locust users).
    ids: str = "name"


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    sender: int
    seq: int
    receiver: int


def plan_faults(opts: FaultOptions) -> list[Fault]:
    """The faults, chosen by ``opts.seed``: distinct messages, at least
    :data:`FAULT_SPACING` sequence numbers apart per sender, each to one
    receiver that is not its sender nor the one to be disconnected.  A swap
    of ``seq`` exchanges it with ``seq + 1``, which ``seq_hi`` must leave room for."""
    rng = random.Random(opts.seed)
    kinds = [k for k in FAULT_KINDS for _ in range(getattr(opts, k))]
    slots = [(s, q) for s in range(opts.senders) for q in range(opts.seq_lo, opts.seq_hi - 1, FAULT_SPACING)]
    if len(kinds) > len(slots):
        raise ValueError(f"{len(kinds)} faults do not fit in {len(slots)} message slots: widen the seq range")
    receivers = [c for c in range(opts.clients) if c != opts.disconnect]
    faults = []
    for kind, (sender, seq) in zip(kinds, rng.sample(slots, len(kinds)), strict=True):
        choices = [c for c in receivers if c != sender]
        if not choices:
            raise ValueError("no receiver to put a fault on")
        faults.append(Fault(kind, sender, seq, rng.choice(choices)))
    return faults


class DelayModel:
    """When each message is due at its receivers: intended send time plus a
    constant, plus a seeded uniform part, moved past any stall window, and
    never before the same sender's previous message (so delays never reorder)."""

    def __init__(self, opts: FaultOptions) -> None:
        self.constant_ns = round(opts.delay_ms * 1e6)
        lo, hi = opts.uniform_ms or (0.0, 0.0)
        self.uniform_lo_ns = round(lo * 1e6)
        self.uniform_span_ns = round((hi - lo) * 1e6)
        self.seed = opts.seed
        self.every_ns = round(opts.stall_every_ms * 1e6)
        self.stall_ns = round(opts.stall_ms * 1e6)
        self.once_at_ns = round(opts.stall_at_ms * 1e6)
        self.senders = opts.senders
        self.rate = opts.rate
        self.origin_ns: int | None = None  #: the timetable's first intended send (the once-stall's origin)
        self.last_due: dict[int, int] = {}

    def uniform_fraction(self, sender: int, seq: int) -> float:
        """A fixed pseudo-random number in [0, 1) per message: splitmix64's
        finaliser of the seed, sender and seq (cheap, and no pattern across seqs)."""
        mask = 0xFFFFFFFFFFFFFFFF
        x = (self.seed * 0x9E3779B97F4A7C15 + sender * 0xBF58476D1CE4E5B9 + seq * 0x94D049BB133111EB) & mask
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
        return (x ^ (x >> 31)) / 2**64

    def due_ns(self, sender: int, seq: int, intended_ns: int) -> int:
        due = intended_ns + self.constant_ns
        if self.uniform_span_ns or self.uniform_lo_ns:
            due += self.uniform_lo_ns + int(self.uniform_span_ns * self.uniform_fraction(sender, seq))
        if self.every_ns and self.stall_ns:
            phase = due % self.every_ns
            if phase < self.stall_ns:
                due += self.stall_ns - phase
        if self.once_at_ns and self.stall_ns:
            if self.origin_ns is None:  # message m = seq * senders + sender was intended at t0 + m / rate
                m = seq * self.senders + sender
                self.origin_ns = intended_ns - (int(m * 1e9 / self.rate) if self.rate > 0 else 0)
            start = self.origin_ns + self.once_at_ns
            if start <= due < start + self.stall_ns:
                due = start + self.stall_ns
        due = max(due, self.last_due.get(sender, 0))
        self.last_due[sender] = due
        return due


#: A probe's intended time may differ from the timetable by this much (ns):
#: the swarm rounds ``m * 1e9 / rate`` down to whole nanoseconds.
TIMETABLE_SLACK_NS = 1_000


class TimetableRecord(TypedDict):
    checked: int  #: probes compared with the timetable
    off: int  #: probes whose intended time is not their timetable slot
    max_off_us: float


class Timetable:
    """The swarm's open-loop timetable (``bench.swarm.plan.Schedule``): message
    ``m = seq * senders + sender`` is due at ``t0 + m / rate``.  ``t0`` comes
    from the first probe; every later probe must carry exactly its slot's time.
    A harness that stamped the *actual* send time would be found out here
    whenever its sender ran late."""

    def __init__(self, senders: int, rate: float) -> None:
        self.senders = senders
        self.step_s = 1 / rate
        self.t0: int | None = None
        self.checked = 0
        self.off = 0
        self.max_off_ns = 0

    def check(self, sender: int, seq: int, intended_ns: int) -> None:
        offset = int((seq * self.senders + sender) * 1_000_000_000 * self.step_s)
        if self.t0 is None:
            self.t0 = intended_ns - offset
        deviation = abs(intended_ns - (self.t0 + offset))
        self.checked += 1
        if deviation > TIMETABLE_SLACK_NS:
            self.off += 1
            self.max_off_ns = max(self.max_off_ns, deviation)

    def record(self) -> TimetableRecord:
        return TimetableRecord(checked=self.checked, off=self.off, max_off_us=round(self.max_off_ns / 1000, 1))


class FaultRecord(TypedDict):
    kind: str
    sender: int
    seq: int
    receiver: int
    applied: bool  #: the receiver was online when the message came through


class LatencyRecord(TypedDict):
    """HDR histograms (``hdrhistogram-v2-base64``, microseconds) over every
    probe delivery the relay made."""

    scheduled: str  #: due - intended: what the schedule asked for
    observed: str  #: handed to the kernel - intended: what the harness should report
    passthrough: str  #: handed to the kernel - due: the relay's own lateness
    deliveries: int
    above_100ms: int  #: scheduled deliveries above 100 ms (the stall's share)


class ScheduleFile(TypedDict):
    """What the relay writes (at start: the plan; at exit: the outcome too)."""

    kind: str
    options: dict[str, object]
    faults: list[FaultRecord]
    #: the disconnected receiver's deliveries before it was cut off, per sender id
    disconnect_delivered: dict[str, int] | None
    #: ``--ids arrival``: receiver index -> chat name, sender index -> probe sender id
    receiver_names: dict[str, str]
    sender_ids: dict[str, int]
    latency: LatencyRecord | None
    timetable: TimetableRecord | None  #: with ``--rate``
    finished: bool


SCHEDULE_KIND = "chatbench-fault-schedule"


def options_dict(opts: FaultOptions) -> dict[str, object]:
    return asdict(opts)
