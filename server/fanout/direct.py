"""``--fanout direct``: the seed's way, kept as the slow reference.

The sender's thread does a blocking ``sendall`` to every recipient, so one
client that stops reading stalls everyone who talks.  The benchmarks keep it
to show what the other strategies fix (with a per-client lock, so at least
lines are never interleaved mid-line).
"""

from __future__ import annotations

import socket

from server.fanout.base import (
    HubSendsFanout,
    LockedOutbox,
    Outbox,
    OverflowHook,
    send_nowait,
    shutdown_how,
    shutdown_socket,
)


class DirectOutbox(LockedOutbox):
    """Blocking ``sendall`` in the caller's thread: the seed's strategy."""

    __slots__ = ("_closed", "_sock", "failure")

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self._closed = False
        self.failure: OSError | None = None

    def send(self, data: bytes) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                self._sock.sendall(data)
            except OSError as exc:
                self.failure = exc
                self._closed = True

    def dispose(self) -> None:
        self._sock.close()

    def close(self, last_line: bytes = b"", wake_reader: bool = True, half_close: bool = False) -> None:
        # Do not wait for the lock: a sender may be blocked on this client forever.
        self._closed = True
        if last_line:
            send_nowait(self._sock, last_line)
        shutdown_socket(self._sock, shutdown_how(wake_reader, half_close))


class DirectFanout(HubSendsFanout):
    """No thread and no queue: the hub sends to each outbox itself."""

    def __init__(self, send_queue_bytes: int) -> None:
        # Nothing is ever queued, so there is no queue limit to enforce.
        del send_queue_bytes

    def outbox(self, sock: socket.socket, on_overflow: OverflowHook, name: str) -> Outbox:
        return DirectOutbox(sock)
