"""The publisher thread: reader threads hand it messages, it publishes them.

``offer`` never blocks on Redis: it appends (channel, message) to a queue
bounded in bytes and returns.  The thread takes everything queued at once,
joins consecutive line messages of this node to one channel into one (a burst
to a room becomes a few big PUBLISHes) and sends them in one pipeline.  One
thread, one FIFO queue and one connection: a sender's lines and notices leave
in the order they were offered, on whatever channels, and Redis relays them to
each subscriber in that order, which is what per-sender order rests on.

While the link is down nothing is queued (the lines reach the local members
only; the node told them the room is partitioned), so memory stays bounded.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
from collections.abc import Callable

import redis

from server.backplane import codec

log = logging.getLogger(__name__)

#: Bytes that may wait for Redis.  A node fanning out 100 MB/s to Redis has
#: 160 ms of slack; a Redis slower than that for longer loses lines (counted,
#: logged) rather than growing the server without bound.
PUBLISH_QUEUE_BYTES = 16 << 20

#: Largest single PUBLISH built by joining line messages: big enough to carry
#: a burst in a few messages, small enough not to stall Redis' event loop.
PUBLISH_BATCH_BYTES = 256 * 1024


class Publisher:
    def __init__(
        self,
        client: redis.Redis,
        node: bytes,
        on_lost: Callable[[Exception], None],
    ) -> None:
        self._client = client
        self._node = node
        self._on_lost = on_lost
        self._cond = threading.Condition(threading.Lock())
        self._queue: collections.deque[tuple[str, bytes]] = collections.deque()
        self._bytes = 0
        self._stopping = False
        #: False while the link is down: offers are dropped, not queued.
        self.up = True
        #: Messages dropped because the queue was full or the link down.
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="backplane-publisher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def offer(self, channel: str, message: bytes) -> None:
        """Queue one encoded message for ``channel``; never waits for Redis."""
        with self._cond:
            if not self.up or self._bytes + len(message) > PUBLISH_QUEUE_BYTES:
                self.dropped += 1
                return
            self._queue.append((channel, message))
            self._bytes += len(message)
            if len(self._queue) == 1:
                self._cond.notify()

    def _take(self) -> list[tuple[str, bytes]] | None:
        with self._cond:
            while not self._queue and not self._stopping:
                self._cond.wait()
            if self._stopping and not self._queue:
                return None
            batch = list(self._queue)
            self._queue.clear()
            self._bytes = 0
            return batch

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            try:
                pipe = self._client.pipeline(transaction=False)
                for channel, run in itertools.groupby(batch, key=lambda item: item[0]):
                    for message in coalesce([m for _, m in run], self._node):
                        pipe.publish(channel, message)
                pipe.execute()
            except redis.RedisError as exc:
                self.dropped += len(batch)
                self._on_lost(exc)

    def set_up(self, up: bool) -> None:
        with self._cond:
            self.up = up
            if not up:
                self.dropped += len(self._queue)
                self._queue.clear()
                self._bytes = 0

    def stop(self, timeout: float) -> None:
        """Publish what is queued (within ``timeout``), then end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout)


def coalesce(batch: list[bytes], node: bytes) -> list[bytes]:
    """Join runs of this node's line messages (to one channel) into messages
    of up to PUBLISH_BATCH_BYTES; every other message stays where it is, so
    the order of everything is kept."""
    out: list[bytes] = []
    run: list[bytes] = []
    size = 0
    head = codec.LINES + node
    skip = len(head)
    for message in batch:
        if message.startswith(head):
            if run and size + len(message) - skip > PUBLISH_BATCH_BYTES:
                out.append(head + b"".join(run))
                run, size = [], 0
            run.append(message[skip:])
            size += len(message) - skip
            continue
        if run:
            out.append(head + b"".join(run))
            run, size = [], 0
        out.append(message)
    if run:
        out.append(head + b"".join(run))
    return out
