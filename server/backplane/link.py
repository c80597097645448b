"""One node's link to the cluster: the subscriber and keeper threads, the
publisher, the room subscriptions, the link state (up or partitioned) and the
directory.

Threads (one each per node):

* ``backplane-subscriber`` subscribes to the control channel and to the
  channel of every room with members on this node, and delivers what the
  other nodes publish to this node's clients, in the order Redis relays it.
  When the link drops it reconnects (every RECONNECT_INTERVAL_S) and rejoins:
  subscribe, register this node's names again, load the roster, tell the others.
* ``backplane-keeper`` renews the leases and announces dead nodes' users as gone.
* ``backplane-publisher`` (:mod:`~server.backplane.publisher`).

Room channels follow the rooms' local members (as socket.io's and
Centrifugo's Redis engines do): :meth:`Link.occupy` counts a member into a
room and subscribes when it is the first here, :meth:`Link.vacate` counts one
out and unsubscribes when it was the last.  A room with members on one node
only costs the cluster nothing: nobody else subscribes to its channel.

A lost link never stops the node: its clients keep chatting among
themselves and are told once that the room is partitioned, then once that it
is whole again.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections import deque
from collections.abc import Callable
from typing import Protocol

import redis
from redis.backoff import NoBackoff
from redis.client import PubSub
from redis.retry import Retry

from server import protocol
from server.backplane import codec
from server.backplane.directory import Directory
from server.backplane.errors import BackplaneError
from server.backplane.leases import (
    CONTROL_CHANNEL,
    NODE_LOST_REASON,
    RENEW_INTERVAL_S,
    ROOM_CHANNEL_PREFIX,
    Leases,
    room_channel,
)
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


class LocalHub(Protocol):
    """What the link needs of the node's hub (``ClusterHub``): deliver what
    the other nodes say to this node's members."""

    def deliver(self, room: str, lines: bytes) -> None: ...

    def deliver_private(self, sender: str, to: str, text: str) -> None: ...

    def notify_everyone(self, data: bytes) -> None: ...

    def on_joined(self, name: str) -> None: ...

    def on_left(self, name: str, reason: str, rooms: list[str]) -> None: ...

    def on_entered(self, name: str, room: str) -> None: ...

    def on_exited(self, name: str, room: str, reason: str) -> None: ...

    def on_renamed(self, old: str, new: str, rooms: list[str]) -> None: ...

    def local_entries(self) -> dict[str, str]: ...


def new_node_id() -> bytes:
    return secrets.token_hex(codec.NODE_ID_BYTES // 2).encode()


class Link:
    def __init__(self, url: str, hub: LocalHub) -> None:
        self.url = url
        self.hub = hub
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
        #: ``Redis.pubsub``, through a typed name: redis-py releases differ in
        #: whether they annotate it (an untyped call would need an ignore that
        #: another release flags as unused).
        self._open_pubsub: Callable[..., PubSub] = self.client.pubsub
        self.leases = Leases(self.client, self.node)
        self.directory = Directory()
        self.publisher = Publisher(self.client, self.node, self.lost)
        self._state = threading.Lock()
        self.up = False
        self._joined = threading.Event()
        self._stopping = threading.Event()
        self._subscriptions = Subscriptions()
        self._handlers = self._handler_table()

    def _handler_table(self) -> dict[bytes, Callable[[codec.Message], None]]:
        """Message kind -> what this node does with it (control channel)."""
        d, hub, text = self.directory, self.hub, codec.text

        def left(m: codec.Message) -> None:
            name = text(m.fields[0])
            rooms = d.remove(m.node, name)
            if rooms is not None:  # else nobody here was told it came
                hub.on_left(name, text(m.fields[1]), rooms)

        def entered(m: codec.Message) -> None:
            name, room = map(text, m.fields)
            if d.enter(m.node, name, room):
                hub.on_entered(name, room)

        def exited(m: codec.Message) -> None:
            name, room, reason = map(text, m.fields)
            if d.exit(m.node, name, room):
                hub.on_exited(name, room, reason)

        def renamed(m: codec.Message) -> None:
            old, new = map(text, m.fields)
            hub.on_renamed(old, new, d.rename(m.node, old, new))

        def joined(m: codec.Message) -> None:
            d.add(m.node, text(m.fields[0]))
            hub.on_joined(text(m.fields[0]))

        return {
            codec.JOINED: joined,
            codec.LEFT: left,
            codec.ENTERED: entered,
            codec.EXITED: exited,
            codec.RENAMED: renamed,
            codec.PRIVATE: lambda m: hub.deliver_private(*map(text, m.fields)),
            codec.SYNC: lambda m: d.replace_node(m.node, dict(codec.parse_entry(text(f)) for f in m.fields)),
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
            self.leases.publish_now([codec.encode_left(self.node, n, reason) for n in names])
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
        self.hub.notify_everyone(PARTITIONED)

    def _rejoin(self) -> None:
        """After (re)subscribing: register this node's names, load the roster, tell the others."""
        entries = self.hub.local_entries()
        for name in self.leases.register(entries):
            log.warning("%s is now held by another node of the cluster", name)
        self.directory.replace_all(self.leases.snapshot())
        self.leases.publish_now([codec.encode_sync(self.node, list(entries.values()))])
        with self._state:
            was_joined = self._joined.is_set()
            self.up = True
            self.publisher.set_up(True)
        self._joined.set()
        if was_joined:
            log.warning("backplane is back: rejoined the cluster with %d local users", len(entries))
            self.hub.notify_everyone(REJOINED)

    # -- threads ----------------------------------------------------------------

    def _subscribe_loop(self) -> None:
        while not self._stopping.is_set():
            pubsub = self._open_pubsub()
            try:
                self._subscriptions.attach(pubsub)
                self._rejoin()
                while self.up and not self._stopping.is_set():
                    message = pubsub.get_message(timeout=POLL_S)
                    if message is None:
                        continue
                    if message["type"] == "message":
                        self._handle(message["channel"], message["data"])
                    elif message["type"] == "subscribe":
                        self._subscriptions.confirmed(message["channel"])
            except redis.RedisError as exc:
                self.lost(exc)
            finally:
                self._subscriptions.detach()
                pubsub.close()
            self._stopping.wait(RECONNECT_INTERVAL_S)

    def _handle(self, channel: bytes, data: bytes) -> None:
        if data[1 : 1 + codec.NODE_ID_BYTES] == self.node:
            return  # our own
        try:
            message = codec.decode(data)
            if message.kind == codec.LINES:
                room = channel.decode()
                if room.startswith(ROOM_CHANNEL_PREFIX):
                    self.hub.deliver(room[len(ROOM_CHANNEL_PREFIX) :], message.fields[0])
            else:
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
                for name in self.leases.renew(self.hub.local_entries()):
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
            # Every name Redis or this node's roster has on it: a node that died
            # between telling the cluster and writing Redis is in one of them.
            gone = list(dict.fromkeys([*names, *self.directory.names_on(node)]))
            log.warning("node %s is gone: its %d users left", node.decode(), len(gone))
            # Sent as the dead node, so every node (this one too) tells its own
            # members who shared a room with them, once each.
            self.leases.publish_now([codec.encode_left(node, n, NODE_LOST_REASON) for n in gone])

    # -- what the hub calls ---------------------------------------------------------

    def offer(self, message: bytes, room: str | None = None) -> None:
        """Publish ``message`` (encoded by ``codec``) on ``room``'s channel, or
        on the control channel; never waits for Redis."""
        self.publisher.offer(CONTROL_CHANNEL if room is None else room_channel(room), message)

    def occupy(self, room: str) -> None:
        """A member of ``room`` is on this node now (count it in before adding
        it).  The first one subscribes to the room's channel and waits (at most
        REDIS_TIMEOUT_S) until Redis confirms, so every line published after
        this returns reaches the node."""
        ready = self._subscriptions.add(room_channel(room))
        if ready is not None and not ready.wait(REDIS_TIMEOUT_S):
            log.warning("no confirmation of the subscription to %s in %.0fs", room, REDIS_TIMEOUT_S)

    def vacate(self, room: str) -> None:
        """A member of ``room`` left this node's room; the last one unsubscribes."""
        self._subscriptions.remove(room_channel(room))

    def claim(self, name: str) -> bool:
        """Take ``name`` cluster-wide.  While partitioned a name is only checked
        locally (and against the roster) and claimed on rejoin."""
        if not self.up:
            return self.directory.find(name) is None
        try:
            return self.leases.claim(name, codec.entry(name, [protocol.DEFAULT_ROOM]))
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


class Subscriptions:
    """Which room channels this node wants (a count of local members per
    channel) and the subscriber's connection to send SUBSCRIBE and
    UNSUBSCRIBE on.  The count makes the order of concurrent first-joins and
    last-parts irrelevant: the channel is subscribed exactly while it is
    above zero.  redis-py sends a pubsub command under a lock of its own and
    reads replies only in the subscriber thread, so any thread may send."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wanted: dict[str, int] = {}
        self._pubsub: PubSub | None = None
        #: Per channel, the events of SUBSCRIBEs sent and not yet confirmed, in order.
        self._pending: dict[str, deque[threading.Event]] = {}

    def attach(self, pubsub: PubSub) -> None:
        """A new subscriber connection: the control channel and every wanted room."""
        with self._lock:
            pubsub.subscribe(CONTROL_CHANNEL, *self._wanted)
            self._pubsub = pubsub

    def detach(self) -> None:
        """The connection is gone: nobody waits for a confirmation any more."""
        with self._lock:
            self._pubsub = None
            for events in self._pending.values():
                for event in events:
                    event.set()
            self._pending.clear()

    def add(self, channel: str) -> threading.Event | None:
        """Count one more member in; the event to wait on for the first one."""
        with self._lock:
            count = self._wanted.get(channel, 0)
            self._wanted[channel] = count + 1
            pending = self._pending.get(channel)
            if count:
                return pending[-1] if pending else None
            if self._pubsub is None:
                return None  # partitioned: subscribed by attach on rejoin
            ready = threading.Event()
            self._pending.setdefault(channel, deque()).append(ready)
            self._send(self._pubsub.subscribe, channel)
            return ready

    def remove(self, channel: str) -> None:
        with self._lock:
            count = self._wanted.get(channel, 0) - 1
            if count > 0:
                self._wanted[channel] = count
                return
            self._wanted.pop(channel, None)
            if self._pubsub is not None:
                self._send(self._pubsub.unsubscribe, channel)

    def confirmed(self, channel: bytes) -> None:
        """Redis confirmed a SUBSCRIBE (subscriber thread)."""
        with self._lock:
            pending = self._pending.get(channel.decode())
            if pending:
                pending.popleft().set()
                if not pending:
                    del self._pending[channel.decode()]

    def _send(self, command: Callable[[str], object], channel: str) -> None:
        """A failed send leaves the subscriber to find the link lost and
        resubscribe everything wanted when it is back."""
        try:
            command(channel)
        except (redis.RedisError, OSError) as exc:
            log.debug("could not (un)subscribe %s: %s", channel, exc)
            for event in self._pending.pop(channel, ()):
                event.set()
