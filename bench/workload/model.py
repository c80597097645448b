"""The workload model: what a run's rooms, senders and messages look like.

A :class:`Workload` is a few numbers and distributions, given as options
(``--rooms 500 --room-sizes zipf:1.0 --rooms-per-client 3``) or in a TOML
file (a **scenario**: :mod:`bench.workload.scenarios`), and turned into the
run's plan by :mod:`bench.workload.build` -- rooms with their members,
streams (one sender's messages to one room) and each stream's share of the
messages -- and its timetable by :mod:`bench.workload.traffic`.  Everything
random is drawn from :attr:`Workload.seed`, so one workload and one client
count always give the same plan and the same timetable.

The default workload is the one room every run had before there were rooms:
every receiver in the target's one room, ``--senders`` of them sending,
messages of ``--payload`` bytes at a constant total ``--rate``.

Distributions are written as text, the same on the command line and in a
file (:func:`room_sizes`, :func:`payload_sizes`, :func:`skew`):

``room sizes``  ``fixed`` (the memberships spread evenly), ``fixed:M`` (every
                room M members), ``uniform:A-B`` (each room's size drawn from
                A..B), ``zipf:S`` (room i of R gets a share of the memberships
                proportional to i**-S: a few big rooms, a long tail of small ones)
``payload``     ``64`` (fixed), ``uniform:A-B``, or a weighted list
                ``64:80,1024:15,16384:5`` (sizes in bytes, weights in any unit)
``skew``        ``none`` (every stream sends as often) or ``zipf:S`` (the
                streams' shares of the rate follow a Zipf law over a random
                ranking: a few talkative senders)

Bad values raise :class:`WorkloadError` (a ``ValueError``) with a one-line reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

#: Most rooms a workload may ask for (personal rooms not counted): the plan
#: holds every room's member list in every worker, and the biggest server
#: limit here (our ``--max-rooms`` default) is 20,000.
MAX_ROOMS = 1_000_000
#: Largest payload a distribution may name: the brokers' frame limit
#: (``bench.wire.broker.MAX_TEXT_BYTES``) is about 1 MiB; our server's line
#: limit is far lower, and each protocol checks its own before a run.
MAX_PAYLOAD_BYTES = 1 << 20
#: Largest Zipf exponent accepted: past this nearly everything goes to rank 1.
MAX_ZIPF_S = 10.0
#: Arrival processes: ``constant`` (message m at t0 + m / rate, as always) or
#: ``poisson`` (exponential gaps of mean 1 / rate).
ARRIVALS = ("constant", "poisson")
#: What ``--rate`` means: messages/s over all streams, or per room.
RATE_MODES = ("total", "per-room")


class WorkloadError(ValueError):
    """A workload option or file that cannot be used; the message says why (one line)."""


# -- distributions -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoomSizes:
    """How big the rooms are (see the module docstring)."""

    kind: str  #: "fixed", "uniform" or "zipf"
    low: int = 0  #: fixed:M -> M; uniform:A-B -> A; 0 for fixed (even spread)
    high: int = 0  #: uniform: B
    s: float = 0.0  #: zipf: the exponent

    def __str__(self) -> str:
        if self.kind == "zipf":
            return f"zipf:{self.s:g}"
        if self.kind == "uniform":
            return f"uniform:{self.low}-{self.high}"
        return f"fixed:{self.low}" if self.low else "fixed"


@dataclass(frozen=True, slots=True)
class PayloadSizes:
    """Payload bytes per message: one size, a range, or sizes with weights."""

    sizes: tuple[int, ...]  #: fixed: one size; uniform: (low, high); weighted: the sizes
    weights: tuple[float, ...] = ()  #: weighted: one per size
    uniform: bool = False

    @property
    def fixed(self) -> int | None:
        """The one size, when there is one."""
        return self.sizes[0] if len(self.sizes) == 1 and not self.uniform else None

    @property
    def largest(self) -> int:
        return max(self.sizes)

    @property
    def mean(self) -> float:
        if self.uniform:
            return (self.sizes[0] + self.sizes[1]) / 2
        if not self.weights:
            return float(self.sizes[0])
        return sum(s * w for s, w in zip(self.sizes, self.weights, strict=True)) / sum(self.weights)

    def __str__(self) -> str:
        if self.uniform:
            return f"uniform:{self.sizes[0]}-{self.sizes[1]}"
        if not self.weights:
            return str(self.sizes[0])
        return ",".join(f"{s}:{w:g}" for s, w in zip(self.sizes, self.weights, strict=True))


def _int(text: str, what: str, low: int = 0, high: int | None = None) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise WorkloadError(f"{what}: {text.strip()!r} is not a whole number") from None
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise WorkloadError(f"{what}: {value} is out of range ({bound})")
    return value


def _exponent(text: str, what: str) -> float:
    try:
        s = float(text)
    except ValueError:
        raise WorkloadError(f"{what}: the Zipf exponent {text!r} is not a number") from None
    if not (0 < s <= MAX_ZIPF_S) or math.isnan(s):
        raise WorkloadError(f"{what}: the Zipf exponent must be in (0, {MAX_ZIPF_S:g}], got {text}")
    return s


def _range(text: str, what: str, low: int) -> tuple[int, int]:
    a, sep, b = text.partition("-")
    if not sep:
        raise WorkloadError(f"{what}: uniform needs a range A-B, got {text!r}")
    lo, hi = _int(a, what, low), _int(b, what, low)
    if lo > hi:
        raise WorkloadError(f"{what}: the range {lo}-{hi} is empty (A must be <= B)")
    return lo, hi


def room_sizes(text: str) -> RoomSizes:
    """``fixed``, ``fixed:M``, ``uniform:A-B`` or ``zipf:S``."""
    what = "room sizes"
    kind, _, arg = str(text).strip().lower().partition(":")
    if kind == "fixed":
        return RoomSizes("fixed", _int(arg, what, 1) if arg else 0)
    if kind == "uniform":
        lo, hi = _range(arg, what, 1)
        return RoomSizes("uniform", lo, hi)
    if kind == "zipf":
        return RoomSizes("zipf", s=_exponent(arg or "1", what))
    raise WorkloadError(f"{what}: {text!r} is not fixed, fixed:M, uniform:A-B or zipf:S")


def payload_sizes(text: str | int) -> PayloadSizes:
    """``64``, ``uniform:A-B`` or ``64:80,1024:15,16384:5``."""
    what = "payload"
    raw = str(text).strip().lower()
    if raw.startswith("uniform:"):
        lo, hi = _range(raw[len("uniform:") :], what, 0)
        if hi > MAX_PAYLOAD_BYTES:
            raise WorkloadError(f"{what}: {hi} bytes is over the {MAX_PAYLOAD_BYTES}-byte limit")
        return PayloadSizes((lo, hi), uniform=True)
    if ":" not in raw:
        return PayloadSizes((_int(raw, what, 0, MAX_PAYLOAD_BYTES),))
    sizes: list[int] = []
    weights: list[float] = []
    for part in raw.split(","):
        size, sep, weight = part.partition(":")
        if not sep:
            raise WorkloadError(f"{what}: {part.strip()!r} is not SIZE:WEIGHT (as in 64:80,1024:20)")
        sizes.append(_int(size, what, 0, MAX_PAYLOAD_BYTES))
        try:
            w = float(weight)
        except ValueError:
            raise WorkloadError(f"{what}: the weight {weight.strip()!r} is not a number") from None
        if not (w > 0) or math.isinf(w):
            raise WorkloadError(f"{what}: weights must be positive, got {weight.strip()}")
        weights.append(w)
    if len(set(sizes)) != len(sizes):
        raise WorkloadError(f"{what}: a size is listed twice in {raw!r}")
    return PayloadSizes(tuple(sizes), tuple(weights))


def skew(text: str) -> float:
    """``none`` -> 0.0, ``zipf:S`` -> S: the publisher skew's exponent."""
    raw = str(text).strip().lower()
    if raw in ("none", "0", ""):
        return 0.0
    kind, _, arg = raw.partition(":")
    if kind != "zipf":
        raise WorkloadError(f"publisher skew: {text!r} is not none or zipf:S")
    return _exponent(arg or "1", "publisher skew")


def choice(text: str, choices: tuple[str, ...], what: str) -> str:
    value = str(text).strip().lower()
    if value not in choices:
        raise WorkloadError(f"{what}: {text!r} is not one of {', '.join(choices)}")
    return value


# -- the workload --------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """A run's rooms, senders and messages (see the module docstring).
    ``None`` fields take their default, or the run's options (``--senders``,
    ``--payload``)."""

    #: R: rooms (personal rooms not counted); None: 1, or as many as
    #: ``fixed:M`` / ``uniform:A-B`` rooms take to hold the memberships
    rooms: int | None = None
    sizes: RoomSizes = field(default_factory=lambda: RoomSizes("fixed"))
    #: rooms each client is in (the memberships: clients x this); None: 1
    per_client: int | None = None
    personal: bool = False  #: every client also has a room of its own
    #: senders per room; in one room, the run's senders (``--senders``)
    senders_per_room: int | None = None
    publisher_skew: float = 0.0  #: Zipf exponent of the streams' shares of the rate (0: equal)
    payload: PayloadSizes | None = None  #: None: ``--payload`` bytes, fixed
    arrivals: str = "constant"
    rate_mode: str = "total"
    seed: int = 1
    name: str | None = None  #: the scenario's name, or the file it came from
    description: str = ""

    def __post_init__(self) -> None:
        if self.rooms is not None:
            _int(str(self.rooms), "rooms", 1, MAX_ROOMS)
        if self.per_client is not None:
            _int(str(self.per_client), "rooms per client", 1, self.rooms)
        if self.senders_per_room is not None:
            _int(str(self.senders_per_room), "senders per room", 1)
        choice(self.arrivals, ARRIVALS, "arrivals")
        choice(self.rate_mode, RATE_MODES, "rate")
        kind = self.sizes.kind
        if kind == "zipf" and (self.rooms or 1) < 2:
            raise WorkloadError(f"room sizes {self.sizes} need --rooms R (R >= 2) to spread the memberships over")
        if self.sets_sizes and self.rooms is not None and self.per_client is not None:
            raise WorkloadError(
                f"room sizes {self.sizes} fix each room's size: give --rooms (how many such rooms) or "
                "--rooms-per-client (rooms enough for that), not both"
            )

    @property
    def sets_sizes(self) -> bool:
        """The sizes are absolute (``fixed:M``, ``uniform:A-B``), not shares."""
        return self.sizes.kind == "uniform" or (self.sizes.kind == "fixed" and self.sizes.low > 0)

    @property
    def one_room(self) -> bool:
        """Today's run: the target's one room, every receiver in it."""
        return (
            (self.rooms or 1) == 1
            and (self.per_client or 1) == 1
            and not self.personal
            and not self.sets_sizes
            and self.sizes.kind == "fixed"
        )

    @property
    def plain(self) -> bool:
        """Exactly the run without any workload option: one room, equal
        senders, constant arrivals, one payload size."""
        return (
            self.one_room
            and self.publisher_skew == 0
            and self.arrivals == "constant"
            and (self.payload is None or self.payload.fixed is not None)
        )

    def describe(self) -> str:
        """One line: the workload as options would give it."""
        if self.plain:
            return "one room"
        parts = []
        if not self.one_room:
            rooms = f"{self.rooms} rooms" if self.rooms is not None else "rooms"
            parts.append(f"{rooms} of sizes {self.sizes}")
            if self.per_client is not None:
                parts.append(f"{self.per_client} per client")
        else:
            parts.append("one room")
        if self.personal:
            parts.append("a personal room each")
        if self.senders_per_room is not None:
            parts.append(f"{self.senders_per_room} sender{'s' if self.senders_per_room != 1 else ''} per room")
        if self.publisher_skew:
            parts.append(f"publisher skew zipf:{self.publisher_skew:g}")
        if self.payload is not None:
            parts.append(f"payload {self.payload}")
        if self.arrivals != "constant":
            parts.append(f"{self.arrivals} arrivals")
        if self.rate_mode != "total":
            parts.append("rate per room")
        return ", ".join(parts)

    def with_options(self, **changes: object) -> Workload:
        """This workload with the given fields changed (``None`` values are
        left as they are: an option not given)."""
        given = {k: v for k, v in changes.items() if v is not None}
        return replace(self, **given) if given else self  # type: ignore[arg-type]
