"""What the swarm measures: a chat server it starts itself, or one already
running on this machine.

A target has a tiny life cycle -- ``start()`` returns the ``(host, port)``
to connect to, ``stop()`` undoes whatever ``start()`` did, ``pid`` is the
process to sample (or ``None``) and ``describe()`` says what it is for the
run's JSON.  New kinds (other servers, other protocols) register a factory
in :data:`TARGET_KINDS`.

``embedded``   this project's server (``python -m server``) as a subprocess
               on a free loopback port, with the given server options passed
               through (``--fanout direct``, ``--send-queue-bytes N``, ...);
               stopped with SIGTERM afterwards.
``ngircd``     ngIRCd (Debian package ``ngircd``), spoken to over IRC, with
               a config the harness writes (:class:`NgircdTarget`).
``miniircd``   miniircd (PyPI), spoken to over IRC (:class:`MiniircdTarget`).
``cluster:N``  redis-server and N of our server processes, each on a port of
               its own, over a Redis backplane; the swarm connects client i
               to node i mod N (:mod:`~bench.targets.cluster`).
``mosquitto`` ``redis`` ``nats``  pub/sub brokers from their Debian packages,
               spoken to over MQTT 5, RESP2 and NATS core
               (:mod:`~bench.targets.brokers`).
``redis://HOST:PORT`` (``nats://``, ``mqtt://``)  a broker somebody else started.
``embedded-ws``  the same server measured over WebSocket (``--ws-port``; also
               ``--target embedded --protocol ws``); ``--protocol shootout``
               speaks the websocket-shootout protocol to it.
``ws://HOST:PORT/ws``  a WebSocket server somebody else started (a
               websocket-shootout server: ``--protocol shootout``).
``HOST:PORT``  a server somebody else started, speaking ``--protocol chat``
               (default) or ``irc``.  Loopback only: the harness refuses to
               send load to any other machine.

Each target says which protocol it speaks (``protocol``, an adapter name in
:data:`bench.wire.PROTOCOLS`), how many registrations may be in flight at once
(``connect_batch``, small for servers with tiny listen backlogs) and, if it
has one, its hard connection limit (``max_connections``).

Modules: :mod:`~bench.targets.base` (the :class:`Target` protocol and the one
process launcher, :class:`ProcessTarget`), :mod:`~bench.targets.embedded`,
:mod:`~bench.targets.peers` (ngircd, miniircd), :mod:`~bench.targets.external`
(HOST:PORT, loopback only), :mod:`~bench.targets.relay` (the fan-out gate's
calibration relay).  This module holds the registry: a new target is one new
class and one :data:`TARGET_KINDS` entry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bench import wire
from bench.targets.base import AlreadyStarted, CommandTarget, ProcessTarget, Target, TargetError
from bench.targets.brokers import MosquittoTarget, NatsTarget, RedisTarget, split_broker_url
from bench.targets.cluster import ClusterTarget, RedisServer, find_redis_server, parse_cluster_spec
from bench.targets.embedded import EmbeddedTarget
from bench.targets.external import ExternalTarget, check_loopback, split_host_port
from bench.targets.faultrelay import FaultRelayTarget
from bench.targets.peers import (
    MINIIRCD_MAX_CONNECTIONS,
    NGIRCD_PENALTY_RATE_PER_SENDER,
    MiniircdTarget,
    NgircdTarget,
    find_ngircd,
    miniircd_installed,
)
from bench.targets.websocket import WS_URL_PROTOCOLS, EmbeddedShootoutTarget, EmbeddedWsTarget, split_ws_url

__all__ = [
    "MINIIRCD_MAX_CONNECTIONS",
    "NGIRCD_PENALTY_RATE_PER_SENDER",
    "TARGET_KINDS",
    "TARGET_PROTOCOLS",
    "AlreadyStarted",
    "ClusterTarget",
    "CommandTarget",
    "EmbeddedShootoutTarget",
    "EmbeddedTarget",
    "EmbeddedWsTarget",
    "ExternalTarget",
    "MiniircdTarget",
    "NgircdTarget",
    "ProcessTarget",
    "RedisServer",
    "Target",
    "TargetError",
    "check_loopback",
    "find_ngircd",
    "find_redis_server",
    "make_target",
    "miniircd_installed",
    "parse_cluster_spec",
    "split_host_port",
    "target_protocol",
]


#: Named targets: name -> factory(server_args).
TARGET_KINDS: dict[str, Callable[[Sequence[str]], Target]] = {
    "embedded": lambda args: EmbeddedTarget(args),
    "ngircd": lambda args: NgircdTarget(args),
    "miniircd": lambda args: MiniircdTarget(args),
    "faultrelay": lambda args: FaultRelayTarget(args),  # the selftest's (bench.targets.faultrelay)
    "mosquitto": lambda args: MosquittoTarget(args),
    "redis": lambda args: RedisTarget(args),
    "nats": lambda args: NatsTarget(args),
    # Ours over WebSocket, as a name of its own so `make compare` can list it.
    "embedded-ws": lambda args: EmbeddedWsTarget(args),
}
#: What each named target speaks.
TARGET_PROTOCOLS: dict[str, str] = {
    "embedded": "chat",
    "ngircd": "irc",
    "miniircd": "irc",
    "mosquitto": "mqtt",
    "redis": "redis",
    "nats": "nats",
    "faultrelay": "chat",
    "embedded-ws": "ws",
}
#: Named targets that also speak another ``--protocol``: (name, protocol) -> factory.
TARGET_VARIANTS: dict[tuple[str, str], Callable[[Sequence[str]], Target]] = {
    ("embedded", "ws"): lambda args: EmbeddedWsTarget(args),
    ("embedded", "shootout"): lambda args: EmbeddedShootoutTarget(args),
}


def target_protocol(spec: str, protocol: str | None = None) -> str:
    """The protocol a ``--target`` speaks: fixed for a named target (a
    different ``--protocol`` is an error), ``protocol`` (default ``chat``)
    for HOST:PORT."""
    if protocol is not None and protocol not in wire.PROTOCOLS:
        raise TargetError(f"unknown protocol {protocol!r} (choose from {', '.join(wire.PROTOCOLS)})")
    if spec.startswith("ws://"):
        if protocol is not None and protocol not in WS_URL_PROTOCOLS:
            raise TargetError(
                f"--protocol {protocol} does not apply: a ws:// target speaks {' or '.join(WS_URL_PROTOCOLS)}"
            )
        return protocol or WS_URL_PROTOCOLS[0]
    url = split_broker_url(spec)
    fixed = TARGET_PROTOCOLS.get(spec) or (url[0] if url else None)
    if fixed is not None:
        if protocol is not None and protocol != fixed and (spec, protocol) not in TARGET_VARIANTS:
            raise TargetError(f"--protocol {protocol} does not apply: target {spec} speaks {fixed}")
        return protocol or fixed
    return protocol or "chat"


def make_target(
    spec: str, server_args: Sequence[str] = (), server_pid: int | None = None, protocol: str | None = None
) -> Target:
    """Build the target a ``--target`` value names."""
    proto = target_protocol(spec, protocol)
    factory = TARGET_VARIANTS.get((spec, proto)) or TARGET_KINDS.get(spec)
    if factory is not None:
        return factory(server_args)
    nodes = parse_cluster_spec(spec)
    if nodes is not None:  # cluster:N (bench/targets/cluster.py)
        return ClusterTarget(nodes, server_args, share_port=False)
    if server_args:
        raise TargetError(
            f"server options ({' '.join(server_args)}) only apply to a server the harness starts "
            f"({', '.join(TARGET_KINDS)}), not to {spec}"
        )
    if spec.startswith("ws://"):
        host, port = split_ws_url(spec)
    else:
        url = split_broker_url(spec)
        host, port = split_host_port(url[1] if url else spec)
    return ExternalTarget(host, port, server_pid, proto)
