"""What the swarm measures: a server the harness starts itself, or one
already running on this machine.

A target has a tiny life cycle -- ``start()`` returns the ``(host, port)``
to connect to, ``stop()`` undoes whatever ``start()`` did, ``pid`` is the
process to sample (or ``None``) and ``describe()`` says what it is for the
run's JSON.  Each target says which protocol it speaks (``protocol``, an
adapter name in :data:`bench.wire.PROTOCOLS`), how many registrations may be
in flight at once (``connect_batch``, small for servers with tiny listen
backlogs) and, if it has one, its hard connection limit (``max_connections``).

The kinds -- ``embedded``, ``embedded-ws``, ``ngircd``, ``miniircd``,
``mosquitto``, ``redis``, ``nats``, ``cluster:N``, ``faultrelay`` -- and the
address forms (``HOST:PORT``, ``[::1]:PORT``, ``redis://``, ``nats://``,
``mqtt://``, ``ws://HOST:PORT/ws``) are listed once, in
:mod:`~bench.targets.registry` (``chat-bench run --help`` prints them).  A
server somebody else started is loopback only: the harness refuses to send
load to any other machine.

Modules: :mod:`~bench.targets.base` (the :class:`Target` protocol and the one
process launcher, :class:`ProcessTarget`), :mod:`~bench.targets.embedded`,
:mod:`~bench.targets.websocket`, :mod:`~bench.targets.peers` (ngircd,
miniircd), :mod:`~bench.targets.brokers`, :mod:`~bench.targets.cluster`,
:mod:`~bench.targets.external` (HOST:PORT, loopback only),
:mod:`~bench.targets.packages` (what a target needs installed),
:mod:`~bench.targets.relay` (the fan-out gate's calibration relay),
:mod:`~bench.targets.faultrelay` (the selftest's) and
:mod:`~bench.targets.registry`.  A new target is one new module and one
:data:`~bench.targets.registry.KINDS` entry.
"""

from __future__ import annotations

from bench.targets import certs
from bench.targets.base import AlreadyStarted, CommandTarget, ProcessTarget, Security, Target, TargetError
from bench.targets.brokers import MosquittoTarget, NatsTarget, RedisTarget
from bench.targets.cluster import ClusterTarget, RedisServer, find_redis_server
from bench.targets.embedded import EmbeddedTarget
from bench.targets.external import ExternalTarget, check_loopback
from bench.targets.peers import (
    MINIIRCD_MAX_CONNECTIONS,
    NGIRCD_PENALTY_RATE_PER_SENDER,
    MiniircdTarget,
    NgircdTarget,
    find_ngircd,
    miniircd_installed,
)
from bench.targets.registry import KINDS, TargetKind, client_tls, make_target, parse_target, target_protocol
from bench.targets.websocket import EmbeddedShootoutTarget, EmbeddedWsTarget

__all__ = [
    "KINDS",
    "MINIIRCD_MAX_CONNECTIONS",
    "NGIRCD_PENALTY_RATE_PER_SENDER",
    "AlreadyStarted",
    "ClusterTarget",
    "CommandTarget",
    "EmbeddedShootoutTarget",
    "EmbeddedTarget",
    "EmbeddedWsTarget",
    "ExternalTarget",
    "MiniircdTarget",
    "MosquittoTarget",
    "NatsTarget",
    "NgircdTarget",
    "ProcessTarget",
    "RedisServer",
    "RedisTarget",
    "Security",
    "Target",
    "TargetError",
    "TargetKind",
    "certs",
    "check_loopback",
    "client_tls",
    "find_ngircd",
    "find_redis_server",
    "make_target",
    "miniircd_installed",
    "parse_target",
    "target_protocol",
]
