"""A chat cluster as a target: ``redis-server`` and N of our server processes.

``cluster:N`` starts a private ``redis-server`` (Debian package
``redis-server``) on a free loopback port, then N nodes (``python -m server
--backplane redis://...``), each on a port of its own
(:meth:`ClusterTarget.node_addresses`): the swarm connects client i to node
i mod N (round robin), so a delivery crosses nodes with probability (N-1)/N
and the harness knows each delivery's path.  With ``share_port`` (``make
cluster``) the nodes share ONE port with SO_REUSEPORT instead and the kernel
spreads the connections (by a hash of their addresses: nobody knows who is where).

The sampler watches the first node's process (``pid``); ``describe()`` lists
every node.  :class:`RedisServer` is also what the cluster tests start.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Self

from bench.results.schema import TargetInfo
from bench.targets.base import AlreadyStarted, CommandTarget, ProcessTarget, TargetError, free_port
from bench.targets.brokers import REDIS_SERVER
from bench.targets.embedded import room_refusal

#: Most nodes one cluster target starts: more processes than that on one
#: machine measure the scheduler, not the cluster.
MAX_NODES = 16


def find_redis_server() -> str | None:
    return REDIS_SERVER.find()


class RedisServer(ProcessTarget):
    """A throw-away ``redis-server``: loopback only, no persistence.
    ``restart()`` starts it again on the same port (the cluster tests)."""

    kind = "redis"
    protocol = "redis"
    label = "redis-server"
    port_taken_markers = ("Address already in use",)

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        super().__init__(host)
        #: Start on this port (a Redis restarted where the nodes look for it); None: a free one.
        self.fixed_port = port

    def command(self, port: int) -> list[str]:
        binary = REDIS_SERVER.find()
        if binary is None:
            raise TargetError(REDIS_SERVER.missing())
        # No RDB/AOF files, no protected mode (loopback only anyway), errors only on stdout.
        quiet = ["--save", "", "--appendonly", "no", "--protected-mode", "no", "--loglevel", "warning"]
        return [binary, "--port", str(port), "--bind", self.host, *quiet, "--logfile", ""]

    def pick_port(self) -> int:
        return self.fixed_port if self.fixed_port is not None else free_port(self.host)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def restart(self) -> None:
        """Stop it and start an empty one on the same port."""
        self.fixed_port = self.port
        self.stop()
        self.start()


def node_command(url: str, port: int, server_args: Sequence[str], host: str = "127.0.0.1") -> list[str]:
    """One node of a cluster, sharing ``port`` with the others."""
    # Flood control off and quiet logs, as for the embedded target; later options win.
    args = ["--log-level", "WARNING", "--rate-limit", "0", *server_args]
    where = ["--host", host, "--port", str(port), "--reuse-port", "--backplane", url]
    return [sys.executable, "-m", "server", *where, *args]


class ClusterTarget:
    """``cluster:N``: redis-server and N nodes, on one port (``share_port``)
    or each on its own (``addresses``)."""

    kind = "cluster"
    protocol = "chat"
    connect_batch: int | None = None
    max_connections: int | None = None

    def refuses_rooms(self, rooms: int, per_client: int) -> str | None:
        """Each node is our server, with its room limits."""
        return room_refusal(self.server_args, rooms, per_client)

    def __init__(
        self,
        nodes: int,
        server_args: Sequence[str] = (),
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        share_port: bool = True,
    ) -> None:
        if not 1 <= nodes <= MAX_NODES:
            raise TargetError(f"cluster:N needs 1 <= N <= {MAX_NODES}, got {nodes}")
        for arg in server_args:
            if arg.split("=")[0] in ("--host", "--port", "--backplane", "--reuse-port"):
                raise TargetError(f"{arg.split('=')[0]} is chosen by the harness for a cluster")
        self.host = host
        self.count = nodes
        self.server_args = list(server_args)
        self.redis = RedisServer(host)
        self.nodes: list[CommandTarget] = []
        #: The nodes' shared port (None: a free one).
        self.fixed_port = port
        #: False: every node on a port of its own (``addresses``), so the
        #: harness chooses which node each client talks to (``cluster:N`` in
        #: the swarm, ``cluster-paths``); True: ``make cluster``.
        self.share_port = share_port
        self.port = 0
        #: Where each node listens, in node order.
        self.addresses: list[tuple[str, int]] = []
        #: "The" address once started (what ``start()`` returned).
        self.address: tuple[str, int] | None = None
        self._running = False

    def start(self) -> tuple[str, int]:
        if self._running:
            raise AlreadyStarted(f"cluster:{self.count} is already running; stop() it first")
        self.nodes, self.addresses = [], []
        self.redis.start()
        self._running = True
        self.port = self.fixed_port or free_port(self.host)
        try:
            for i in range(self.count):
                port = self.port if self.share_port else 0
                node = CommandTarget(node_command(self.redis.url, port, self.server_args, self.host), f"node {i}")
                self.nodes.append(node)
                self.addresses.append(node.start())
        except TargetError:
            self.stop()
            raise
        if not self.share_port:
            self.port = self.addresses[0][1]  # "the" address: the first node's
        self.address = (self.host, self.port)
        return self.address

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.redis.stop()
        self._running = False

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return self.nodes[0].pid if self.nodes else None

    def node_addresses(self) -> list[tuple[str, int]] | None:
        """Every node's address when each has its own port; None when they
        share one (the kernel chooses)."""
        return None if self.share_port else list(self.addresses)

    def enroll(self, accounts: Sequence[tuple[str, str]]) -> None:
        """Nothing: the cluster runs without TLS and accounts (the registry says so)."""

    def describe(self) -> TargetInfo:
        return {
            "kind": f"cluster:{self.count}",
            "protocol": self.protocol,
            "address": f"{self.host}:{self.port}",
            "addresses": [f"{h}:{p}" for h, p in self.addresses],
            "pid": self.nodes[0].last_pid if self.nodes else None,
            "nodes": [node.describe() for node in self.nodes],
            "redis": self.redis.describe(),
            "server_options": list(self.server_args),
        }
