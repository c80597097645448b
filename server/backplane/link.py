"""One node's link to the cluster: the subscriber and keeper threads, the
publisher, the link state (up or partitioned) and the directory.

Threads (one each per node):

* ``backplane-subscriber`` subscribes to the channel and delivers what the
  other nodes publish to this node's clients, in the order Redis relays it.
  When the link drops it reconnects (every RECONNECT_INTERVAL_S) and rejoins:
  subscribe, register this node's names again, load the roster, tell the others.
* ``backplane-keeper`` renews the leases and announces dead nodes' users as gone.
* ``backplane-publisher`` (:mod:`~server.backplane.publisher`).

A lost link never stops the node: its clients keep chatting among
themselves and are told once that the room is partitioned, then once that it
is whole again.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from typing import Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from server import protocol
from server.backplane import codec
from server.backplane.directory import Directory
from server.backplane.errors import BackplaneError
from server.backplane.leases import CHANNEL, NODE_LOST_REASON, RENEW_INTERVAL_S, Leases
from server.backplane.publisher import Publisher

log = logging.getLogger(__name__)

#: Seconds to connect to Redis and for one command: a Redis that does not
#: answer in this long counts as lost (the node keeps serving locally).
REDIS_TIMEOUT_S = 2.0
#: Seconds between two attempts at reaching a lost Redis.
RECONNECT_INTERVAL_S = 0.5
#: Seconds the subscriber waits for a message before looking at its state.
POLL_S = 0.25
#: Seconds a starting node waits for its first join of the cluster.
JOIN_TIMEOUT_S = 10.0
#: Seconds the publisher gets to send what is queued at shutdown.
STOP_TIMEOUT_S = 2.0

PARTITIONED = protocol.encode_line(
    f"{protocol.NOTICE_PREFIX}Cluster link lost: until it is back, only people on this server see your messages"
)
REJOINED = protocol.encode_line(f"{protocol.NOTICE_PREFIX}Cluster link restored: the whole room sees you again")


class Room(Protocol):
    """What the link needs of the node's hub (``ClusterHub``)."""

    def deliver(self, lines: bytes) -> None: ...

    def deliver_private(self, sender: str, to: str, text: str) -> None: ...

    def local_names(self) -> list[str]: ...


def new_node_id() -> bytes:
    return secrets.token_hex(codec.NODE_ID_BYTES // 2).encode()


class Link:
    def __init__(self, url: str, room: Room) -> None:
        self.url = url
        self.room = room
        self.node = new_node_id()
        try:
            self.client = redis.Redis.from_url(
                url,
                socket_timeout=REDIS_TIMEOUT_S,
                socket_connect_timeout=REDIS_TIMEOUT_S,
                retry=Retry(NoBackoff(), 0),
            )
        except ValueError as exc:
            raise BackplaneError(f"bad --backplane URL {url!r}: {exc}") from exc
        self.leases = Leases(self.client, self.node)
        self.directory = Directory()
        self.publisher = Publisher(self.client, CHANNEL, self.node, self.lost)
        self._state = threading.Lock()
        self.up = False
        self._joined = threading.Event()
        self._stopping = threading.Event()
        self._handlers: dict[bytes, Callable[[codec.Message], None]] = {
            codec.LINES: lambda m: room.deliver(m.fields[0]),
            codec.JOINED: lambda m: self.directory.add(m.node, codec.text(m.fields[0])),
            codec.LEFT: lambda m: self.directory.remove(m.node, codec.text(m.fields[0])),
            codec.RENAMED: lambda m: self.directory.rename(m.node, *map(codec.text, m.fields)),
            codec.PRIVATE: lambda m: room.deliver_private(*map(codec.text, m.fields)),
            codec.SYNC: lambda m: self.directory.replace_node(m.node, list(map(codec.text, m.fields))),
        }

    # -- life cycle -----------------------------------------------------------

    def start(self) -> None:
        """Join the cluster; BackplaneError if Redis cannot be reached."""
        try:
            self.client.ping()
        except redis.RedisError as exc:
            raise BackplaneError(f"cannot reach Redis at {self.url}: {exc}") from exc
        self.publisher.start()
        threading.Thread(target=self._subscribe_loop, name="backplane-subscriber", daemon=True).start()
        if not self._joined.wait(JOIN_TIMEOUT_S):
            self._stopping.set()
            raise BackplaneError(f"could not join the cluster at {self.url} within {JOIN_TIMEOUT_S:.0f}s")
        threading.Thread(target=self._keep_loop, name="backplane-keeper", daemon=True).start()
        log.info("node %s joined the cluster at %s", self.node.decode(), self.url)

    def stop(self, names: list[str], reason: str) -> None:
        """Leave the cluster: the others hear that ``names`` left for ``reason``."""
        self._stopping.set()
        self.publisher.stop(STOP_TIMEOUT_S)
        if not self.up:
            return
        try:
            notices = [codec.encode_lines(self.node, protocol.encode_left(n, reason)) for n in names]
            self.leases.publish_now(notices + [codec.encode_left(self.node, n) for n in names])
            self.leases.unregister(names)
        except redis.RedisError as exc:
            log.warning("could not leave the cluster cleanly: %s", exc)

    # -- the link state -----------------------------------------------------------

    def lost(self, exc: Exception) -> None:
        """Any thread that sees Redis fail calls this; the first one tells everyone."""
        with self._state:
            if not self.up:
                return
            self.up = False
            self.publisher.set_up(False)
        if self._stopping.is_set():
            return
        log.warning("lost the backplane (%s): serving local clients only until it is back", exc)
        self.room.deliver(PARTITIONED)

    def _rejoin(self) -> None:
        """After (re)subscribing: register this node's names, load the roster, tell the others."""
        names = self.room.local_names()
        for name in self.leases.register(names):
            log.warning("%s is now held by another node of the cluster", name)
        self.directory.replace_all(self.leases.snapshot())
        self.leases.publish_now([codec.encode_sync(self.node, names)])
        with self._state:
            was_joined = self._joined.is_set()
            self.up = True
            self.publisher.set_up(True)
        self._joined.set()
        if was_joined:
            log.warning("backplane is back: rejoined the cluster with %d local users", len(names))
            self.room.deliver(REJOINED)

    # -- threads ----------------------------------------------------------------

    def _subscribe_loop(self) -> None:
        while not self._stopping.is_set():
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call,unused-ignore]
            try:
                pubsub.subscribe(CHANNEL)
                self._rejoin()
                while self.up and not self._stopping.is_set():
                    message = pubsub.get_message(timeout=POLL_S)
                    if message is not None:
                        self._handle(message["data"])
            except redis.RedisError as exc:
                self.lost(exc)
            finally:
                pubsub.close()
            self._stopping.wait(RECONNECT_INTERVAL_S)

    def _handle(self, data: bytes) -> None:
        if data[1 : 1 + codec.NODE_ID_BYTES] == self.node:
            return  # our own
        try:
            message = codec.decode(data)
            self._handlers[message.kind](message)
        except codec.CodecError as exc:
            log.warning("skipped a backplane message: %s", exc)
        except Exception:  # one bad message must not stop this node hearing the cluster
            log.exception("could not deliver a backplane message")

    def _keep_loop(self) -> None:
        dropped = 0
        while not self._stopping.wait(RENEW_INTERVAL_S):
            if not self.up:
                continue
            try:
                for name in self.leases.renew(self.room.local_names()):
                    log.warning("%s is now held by another node of the cluster", name)
                self._reap()
            except redis.RedisError as exc:
                self.lost(exc)
            if self.publisher.dropped > dropped:
                log.warning("backplane: %d messages not published so far", self.publisher.dropped)
                dropped = self.publisher.dropped

    def _reap(self) -> None:
        for node in self.leases.dead_nodes():
            names = self.leases.reap(node)
            if names is None:
                continue
            log.warning("node %s is gone: its %d users left", node.decode(), len(names))
            # Sent as the dead node, so every node (this one too) delivers them.
            notices = [codec.encode_lines(node, protocol.encode_left(n, NODE_LOST_REASON)) for n in names]
            self.leases.publish_now(notices + [codec.encode_left(node, n) for n in names])

    # -- what the hub calls ---------------------------------------------------------

    def claim(self, name: str) -> bool:
        """Take ``name`` cluster-wide.  While partitioned a name is only checked
        locally (and against the roster) and claimed on rejoin."""
        if not self.up:
            return self.directory.find(name) is None
        try:
            return self.leases.claim(name)
        except redis.RedisError as exc:
            self.lost(exc)
            return self.directory.find(name) is None

    def release(self, name: str) -> None:
        if not self.up:
            return  # not re-registered at rejoin: gone with the next snapshot
        try:
            self.leases.release(name)
        except redis.RedisError as exc:
            self.lost(exc)
