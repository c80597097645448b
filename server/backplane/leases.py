"""The cluster's state in Redis: name leases, live nodes, and the reaping of dead ones.

Keys (all under ``PREFIX``):

``name:KEY``      the node holding the name (its casefolded key), with a lease
                  of LEASE_MS: a node that dies loses its names within it.
``names:NODE``    hash name key -> entry ``NAME ROOM ROOM ...``: every name on
                  NODE and its rooms (for the snapshot a node takes when it
                  (re)joins, and for announcing a dead node's users as gone);
                  the rooms are rewritten with every renewal.
``alive:NODE``    exists while NODE renews it (lease LEASE_MS).
``nodes``         set of the nodes that registered.
``reap:NODE``     taken (SET NX) by the one node that announces NODE's users as
                  gone, so every leave notice goes out exactly once.

A claim is atomic (a Lua script: take the name if free or already ours), so
two nodes can never both hold a name.
"""

from __future__ import annotations

import redis

from server import protocol
from server.backplane import codec

PREFIX = "chatbench:"
#: The channel of everything but lines (membership, /msg, sync): every node
#: publishes to it and subscribes to it.
CONTROL_CHANNEL = PREFIX + "control"
#: A room's lines go to this channel + the room's name; a node subscribes to
#: it only while the room has members on that node.
ROOM_CHANNEL_PREFIX = PREFIX + "room:"

#: Lease of a name and of a node's liveness, in ms: a crashed node's users are
#: announced as gone, and its names free again, within about this long.
LEASE_MS = 3000
#: How often a live node renews its leases: three renewals per lease, so one
#: slow renewal does not lose a name.
RENEW_INTERVAL_S = LEASE_MS / 1000 / 3
#: How long a reap claim blocks other nodes from reaping the same dead node.
REAP_CLAIM_MS = 30_000
#: Why the users of a dead node left, as the others see it.
NODE_LOST_REASON = "server lost"

#: KEYS[1] name key, KEYS[2] the node's names hash; ARGV node, lease ms, field, name.
CLAIM_SCRIPT = """
local owner = redis.call('GET', KEYS[1])
if owner == false or owner == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
  return 1
end
return 0
"""
#: KEYS[1] name key, KEYS[2] the node's names hash; ARGV node, field.
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('HDEL', KEYS[2], ARGV[2])
return 1
"""


def room_channel(room: str) -> str:
    return ROOM_CHANNEL_PREFIX + room


def name_key(name: str) -> str:
    return f"{PREFIX}name:{protocol.name_key(name)}"


def names_key(node: bytes) -> str:
    return f"{PREFIX}names:{node.decode()}"


def alive_key(node: bytes) -> str:
    return f"{PREFIX}alive:{node.decode()}"


class Leases:
    """Redis operations on the cluster state, for one node.  Every method may
    raise ``redis.RedisError``; the caller decides what a lost link means."""

    def __init__(self, client: redis.Redis, node: bytes) -> None:
        self.client = client
        self.node = node
        self._claim = client.register_script(CLAIM_SCRIPT)
        self._release = client.register_script(RELEASE_SCRIPT)

    def claim(self, name: str, entry: str) -> bool:
        """Take ``name`` for this node (``entry``: it and its rooms); False if
        another node holds it."""
        keys = [name_key(name), names_key(self.node)]
        return bool(self._claim(keys=keys, args=[self.node, LEASE_MS, protocol.name_key(name), entry]))

    def release(self, name: str) -> None:
        self._release(keys=[name_key(name), names_key(self.node)], args=[self.node, protocol.name_key(name)])

    def renew(self, members: dict[str, str]) -> list[str]:
        """Renew this node's liveness and every name it holds (``members``:
        name -> entry); the names another node took meanwhile (after a
        partition longer than the lease)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.set(alive_key(self.node), b"1", px=LEASE_MS)
        pipe.sadd(PREFIX + "nodes", self.node)
        for name, entry in members.items():
            keys = [name_key(name), names_key(self.node)]
            self._claim(keys=keys, args=[self.node, LEASE_MS, protocol.name_key(name), entry], client=pipe)
        results = pipe.execute()
        return [name for name, ok in zip(members, results[2:], strict=True) if not ok]

    def register(self, members: dict[str, str]) -> list[str]:
        """Join (or rejoin) the cluster holding exactly ``members``; returns
        the names another node took meanwhile."""
        self.client.delete(names_key(self.node))
        return self.renew(members)

    def other_nodes(self) -> list[bytes]:
        members: set[bytes] = self.client.smembers(PREFIX + "nodes")  # type: ignore[assignment]
        return [n for n in members if n != self.node]

    def snapshot(self) -> dict[bytes, dict[str, list[str]]]:
        """Every other registered node's names and their rooms."""
        nodes = self.other_nodes()
        pipe = self.client.pipeline(transaction=False)
        for node in nodes:
            pipe.hvals(names_key(node))
        return {
            node: dict(codec.parse_entry(v.decode()) for v in vals)
            for node, vals in zip(nodes, pipe.execute(), strict=True)
        }

    def dead_nodes(self) -> list[bytes]:
        """Registered nodes whose liveness lease ran out."""
        nodes = self.other_nodes()
        pipe = self.client.pipeline(transaction=False)
        for node in nodes:
            pipe.exists(alive_key(node))
        return [node for node, alive in zip(nodes, pipe.execute(), strict=True) if not alive]

    def reap(self, node: bytes) -> list[str] | None:
        """Take the job of announcing dead ``node``'s users as gone: their
        names, or None if another node took the job.  Removes the node."""
        if not self.client.set(f"{PREFIX}reap:{node.decode()}", self.node, nx=True, px=REAP_CLAIM_MS):
            return None
        values: list[bytes] = self.client.hvals(names_key(node))  # type: ignore[assignment]
        names = [codec.parse_entry(v.decode())[0] for v in values]
        pipe = self.client.pipeline(transaction=False)
        pipe.delete(names_key(node))
        pipe.srem(PREFIX + "nodes", node)
        pipe.execute()
        return names

    def publish_now(self, messages: list[bytes]) -> None:
        """Publish on the control channel in one pipeline, bypassing the
        publisher's queue (reaping, leaving, sync)."""
        pipe = self.client.pipeline(transaction=False)
        for message in messages:
            pipe.publish(CONTROL_CHANNEL, message)
        pipe.execute()

    def unregister(self, names: list[str]) -> None:
        """Leave the cluster: free every name and the node's keys."""
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            keys = [name_key(name), names_key(self.node)]
            self._release(keys=keys, args=[self.node, protocol.name_key(name)], client=pipe)
        pipe.delete(names_key(self.node), alive_key(self.node))
        pipe.srem(PREFIX + "nodes", self.node)
        pipe.execute()
