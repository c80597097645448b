"""A deliberately slowed chat server, for proving the fan-out gate catches a
slowdown.

``python tests/perf/slow_server.py FACTOR [server options]`` runs the real
server (``python -m server``) with its fan-out path FACTOR times as slow:
from the moment a reader thread starts handling a batch of lines until its
last send, every stretch of server code (parsing the lines, each
recipient's send, and with ``--fanout queued`` each send by the flusher
thread together with its work since its previous send) is followed by a
spin (FACTOR - 1) times as long, holding the GIL as slower Python code
would.  Kernel work outside those calls (the wake-up of the reader thread,
delivery) is not slowed, as it would not be by a slower server.  Join and
leave notices are not slowed by the reader threads: with 50 of them spinning
at once the spins would feed on each other's GIL waits and only make setup
and shutdown slow, which the gate does not measure.
"""

from __future__ import annotations

import socket
import sys
import threading
import time

from server.__main__ import main
from server.fanout import base, direct, outboxes, threads
from server.hub import Hub
from server.rooms import Room
from server.session import Session

_clock = time.perf_counter
_batch = threading.local()


def _spin(seconds: float) -> None:
    until = _clock() + seconds
    while _clock() < until:
        pass


def slow_down(factor: float) -> None:
    extra = factor - 1.0
    original_handle = Session._handle
    original_broadcast = Hub.broadcast

    def handle(self: Session, lines: list[bytes]) -> None:
        _batch.active = True
        _batch.started = _clock()
        try:
            original_handle(self, lines)
        finally:
            _batch.active = False

    def broadcast(self: Hub, data: bytes, exclude: Session | None = None, room: Room | None = None) -> None:
        if not getattr(_batch, "active", False):  # not a reader thread's batch
            original_broadcast(self, data, exclude, room)
            return
        started = _batch.started
        if started is not None:  # parsing the batch took this long so far
            _spin((_clock() - started) * extra)
            _batch.started = None
        if self.fan_out is not None:  # queued: one hand-over, the sends are the flusher's
            start = _clock()
            original_broadcast(self, data, exclude, room)
            _spin((_clock() - start) * extra)
            return
        for member, outbox in (self.lobby if room is None else room).targets:
            if member is not exclude:
                start = _clock()
                outbox.send(data)
                _spin((_clock() - start) * extra)

    original_send_nowait = base.send_nowait
    flusher_clock = threading.local()

    def send_nowait(sock: socket.socket, data: bytes) -> int | OSError:
        # Every send of the queued strategy (the flusher's), with the flusher's
        # Python work since its previous send -- unless it slept in between.
        start = _clock()
        previous = getattr(flusher_clock, "last", None)
        result = original_send_nowait(sock, data)
        base = previous if previous is not None and start - previous < 0.001 else start
        _spin((_clock() - base) * extra)
        flusher_clock.last = _clock()
        return result

    original_write = outboxes.write_fd

    def write_fd(fd: int, data: bytes) -> int:
        # The flusher's writes to plain sockets, slowed the same way.
        start = _clock()
        previous = getattr(flusher_clock, "last", None)
        result = original_write(fd, data)
        base = previous if previous is not None and start - previous < 0.001 else start
        _spin((_clock() - base) * extra)
        flusher_clock.last = _clock()
        return result

    Session._handle = handle  # type: ignore[method-assign]
    outboxes.write_fd = write_fd  # type: ignore[assignment]
    Hub.broadcast = broadcast  # type: ignore[method-assign]
    # Every strategy module holds its own reference to the helper.
    for module in (base, direct, outboxes, threads):
        module.send_nowait = send_nowait  # type: ignore[attr-defined]


if __name__ == "__main__":
    slow_down(float(sys.argv[1]))
    sys.exit(main(sys.argv[2:]))
