"""The Locust integration's plain-Python parts: no locust, no gevent.

Everything here can be imported (and is unit-tested) without Locust's gevent
monkey-patching, which must never reach the server or the test process:
host parsing, the rows of Locust's statistics, unique identities (a sender
id names its process, and so its clock), the clock labels, and step-load
arithmetic.  :mod:`bench.loadtest.users`, :mod:`bench.loadtest.hdr` and
:mod:`bench.loadtest.shape` wrap these for Locust; the result document is
:mod:`bench.loadtest.document`'s.
"""

from __future__ import annotations

import math
import os
import secrets

from bench.wire.address import AddressError, parse_address
from bench.workload import Client, labels, one_room
from server import protocol

DEFAULT_PORT = 8000
DEFAULT_HOST = f"tcp://127.0.0.1:{DEFAULT_PORT}"

#: Locust request types and names (the rows of Locust's statistics).
FANOUT_TYPE = "FANOUT"
FANOUT_NAME = "broadcast"
#: deliveries counted but not timed: the sender's clock offset unknown, or its error over --max-clock-error
UNMEASURED_NAME = FANOUT_NAME + " (clock unmeasured)"
SEND_TYPE = "SEND"
SEND_NAME = "chat"
CONNECT_TYPE = "CONNECT"
CONNECT_NAME = "register"
RECEIVE_TYPE = "RECEIVE"
RECEIVE_NAME = "unrecognised line"

#: Room a probe needs besides its payload: tag, three integers (the sender
#: id is up to 20 digits, the timestamp 19), separators and the checksum.
PROBE_OVERHEAD = 80
#: Largest payload that keeps a probe within the server's default line limit.
MAX_PAYLOAD = protocol.DEFAULT_MAX_LINE_BYTES - PROBE_OVERHEAD
#: Longest line a receiver accepts: the server's limit plus its framing.
RECEIVE_LINE_LIMIT = protocol.DEFAULT_MAX_LINE_BYTES + protocol.SERVER_LINE_OVERHEAD


# --------------------------------------------------------------------------
# Host
# --------------------------------------------------------------------------


def parse_host(host: str | None) -> tuple[str, int]:
    """``tcp://HOST:PORT`` (the documented form), ``HOST:PORT``,
    ``[V6]:PORT`` or ``HOST`` (port 8000) to an address tuple.  Raises
    ``ValueError`` saying what is wrong."""
    try:
        address = parse_address(host or DEFAULT_HOST, schemes=("tcp",), default_scheme="tcp", default_port=DEFAULT_PORT)
    except AddressError as exc:
        raise ValueError(f"--host {exc}") from None
    return address.host, address.port


# --------------------------------------------------------------------------
# Identity
# --------------------------------------------------------------------------

#: A sender id is its process's origin (random, 31 bits) above a counter of
#: the process's users (32 bits): unique across workers and machines, and it
#: says which process -- and so which clock -- a probe came from.
COUNTER_BITS = 32
ORIGIN_BITS = 31


def origin_of(sender_id: int) -> int:
    """The process a sender id belongs to."""
    return sender_id >> COUNTER_BITS


def name_of(sender_id: int) -> str:
    """The chat name of the user with ``sender_id``: a receiver checks every
    probe's name against its sender id with it, without being told the
    names of users on other workers."""
    return f"lc{sender_id:x}"


class Identity:
    """Names and probe sender ids for the users of one process: ``next``
    gives a fresh (name, sender id) for every connection attempt.  A forked
    ``--processes`` child draws an origin of its own."""

    def __init__(self) -> None:
        self._pid = -1
        self._origin = 0
        self._counter = 0

    @property
    def origin(self) -> int:
        """This process's origin (drawn on first use, again after a fork)."""
        pid = os.getpid()
        if pid != self._pid:
            self._pid = pid
            self._origin = secrets.randbits(ORIGIN_BITS) or 1
            self._counter = 0
        return self._origin

    def next(self) -> tuple[str, int]:
        origin = self.origin
        self._counter += 1
        sender = (origin << COUNTER_BITS) | (self._counter & ((1 << COUNTER_BITS) - 1))
        return protocol.validate_name(name_of(sender)), sender


#: Names and sender ids of this process's users.
IDENTITY = Identity()


def process_origin() -> int:
    """This process's origin: the top bits of its users' sender ids."""
    return IDENTITY.origin


def clock_labels() -> tuple[str, str]:
    """The label keys (:mod:`bench.workload.labels`) of a delivery timed on
    one clock and of one whose sender's stamp was corrected onto the
    receiver's clock: ``clock=same``, ``clock=corrected``."""
    clients = [Client(0, "s", receives=False), Client(1, "r", receives=True), Client(2, "c", receives=True, clock=1)]
    plan = one_room(clients, {0: 0}, clocks=2)
    return labels.label_key(plan, 0, 1), labels.label_key(plan, 0, 2)


# --------------------------------------------------------------------------
# Step load
# --------------------------------------------------------------------------


def step_users(elapsed: float, per_step: int, step_time: float, max_users: int) -> int:
    """Users wanted ``elapsed`` seconds into the test: one step at once,
    another every ``step_time`` seconds, never more than ``max_users``."""
    steps = int(elapsed // step_time) + 1
    return min(max_users, steps * per_step)


def step_end(per_step: int, step_time: float, max_users: int) -> float:
    """When a step test without ``-t`` ends: the step that reaches
    ``max_users`` has run for a full ``step_time``."""
    return math.ceil(max_users / per_step) * step_time
