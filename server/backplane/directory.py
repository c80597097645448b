"""Who is on the other nodes: this node's copy of the cluster's roster.

Filled from the backplane's J/Q/R/S messages and from a snapshot of Redis
each time the node (re)joins; read by ``/who``, the welcome line and ``/msg``
without a Redis round trip.  Its lock is never held while calling out.
"""

from __future__ import annotations

import threading

from server import protocol


class Directory:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: name key -> (node, name) of every member of every other node.
        self._by_key: dict[str, tuple[bytes, str]] = {}

    def add(self, node: bytes, name: str) -> None:
        with self._lock:
            self._by_key[protocol.name_key(name)] = (node, name)

    def remove(self, node: bytes, name: str) -> None:
        key = protocol.name_key(name)
        with self._lock:
            if self._by_key.get(key, (b"", ""))[0] == node:
                del self._by_key[key]

    def rename(self, node: bytes, old: str, new: str) -> None:
        with self._lock:
            self._by_key.pop(protocol.name_key(old), None)
            self._by_key[protocol.name_key(new)] = (node, new)

    def replace_node(self, node: bytes, names: list[str]) -> None:
        """``node`` has exactly ``names`` now."""
        with self._lock:
            for key in [k for k, (n, _) in self._by_key.items() if n == node]:
                del self._by_key[key]
            for name in names:
                self._by_key[protocol.name_key(name)] = (node, name)

    def replace_all(self, members: dict[bytes, list[str]]) -> None:
        """The whole roster of the other nodes, from a snapshot."""
        with self._lock:
            self._by_key = {protocol.name_key(n): (node, n) for node, names in members.items() for n in names}

    def find(self, name: str) -> str | None:
        """The name as its owner spelled it, if someone on another node has it."""
        entry = self._by_key.get(protocol.name_key(name))
        return None if entry is None else entry[1]

    def names(self) -> list[str]:
        with self._lock:
            return [name for _, name in self._by_key.values()]

    def __len__(self) -> int:
        return len(self._by_key)
