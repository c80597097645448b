"""Each delivery's path in a cluster: same node or across nodes.

With a target of several nodes (``cluster:N``, every client connected to node
``cid mod N``), a worker knows every sender's node and each of its receivers'
node.  :class:`PathSplit` keeps the worker's latencies in two HDR histograms,
``same`` (sender and receiver on one node: that node's own fan-out) and
``across`` (publisher, Redis, the other node's subscriber, its fan-out);
their exact merge is the run's one distribution.  The recorder
(:mod:`bench.measure.recorder`) hands it latencies two ways, as cheaply as it
records them without paths:

* the block path: one numpy array of latencies and the array of their
  senders (:meth:`PathSplit.record_array`: one lookup of the senders' nodes,
  one comparison, two ``record_array``);
* the per-line path: :meth:`PathSplit.route` gives, for one receiver, a dict
  sender id -> the pending list of that delivery's path, so a line costs one
  dict lookup; the lists are recorded in batches (:meth:`PathSplit.flush`).
"""

from __future__ import annotations

from typing import Any

from bench.measure.stats import LatencyHistogram


class PathSplit:
    """The same-node and cross-node histograms of one worker's receivers.
    ``nodes``: client id -> node index, for every sender and every receiver
    the worker measures."""

    __slots__ = ("_node_table", "_routes", "across", "nodes", "pending_across", "pending_same", "same")

    def __init__(self, nodes: dict[int, int]) -> None:
        self.nodes = nodes
        self.same = LatencyHistogram()
        self.across = LatencyHistogram()
        #: the per-line path's latencies, not yet in their histogram
        self.pending_same: list[int] = []
        self.pending_across: list[int] = []
        self._routes: dict[int, dict[int, list[int]]] = {}  # receiver's node -> sender id -> pending list
        self._node_table: Any = None  # numpy: sender id -> node (-1: not a known client)

    def route(self, own: int) -> dict[int, list[int]]:
        """For receiver ``own``: sender id -> the pending list of its deliveries' path."""
        node = self.nodes[own]
        route = self._routes.get(node)
        if route is None:
            same, across = self.pending_same, self.pending_across
            route = self._routes[node] = {cid: same if n == node else across for cid, n in self.nodes.items()}
        return route

    def pending_count(self) -> int:
        return len(self.pending_same) + len(self.pending_across)

    def record_array(self, senders: Any, own: int, latencies: Any) -> None:
        """The block path: ``latencies[i]`` (numpy) is a delivery from ``senders[i]`` to ``own``."""
        table = self._node_table
        if table is None:
            import numpy as np

            table = np.full(max(self.nodes, default=0) + 1, -1, dtype=np.int64)
            table[list(self.nodes)] = list(self.nodes.values())
            self._node_table = table
        across = table[senders] != self.nodes[own]
        self.across.record_array(latencies[across])
        self.same.record_array(latencies[~across])

    def flush(self) -> None:
        """Record the per-line path's pending latencies."""
        for pending, hist in ((self.pending_same, self.same), (self.pending_across, self.across)):
            hist.record_list(pending)
            pending.clear()

    def merged(self) -> LatencyHistogram:
        """Both paths in one histogram (exact: HDR counts add)."""
        self.flush()
        hist = LatencyHistogram()
        hist.merge(self.same)
        hist.merge(self.across)
        return hist
