"""``--fanout threads``: the first design, kept for comparison.

The caller tries a non-blocking send; what the kernel does not take goes into
a bounded backlog drained by that client's own writer thread, started lazily.
One syscall per line per recipient.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

from server.fanout.base import (
    HubSendsFanout,
    LockedOutbox,
    Outbox,
    OverflowHook,
    send_nowait,
    shutdown_how,
    shutdown_socket,
)


class ThreadedOutbox(LockedOutbox):
    """Non-blocking first try, then a bounded backlog and a lazy writer thread."""

    __slots__ = (
        "_backlog",
        "_backlog_bytes",
        "_closed",
        "_closing_line",
        "_limit",
        "_name",
        "_on_overflow",
        "_shutdown_after",
        "_sock",
        "_wake",
        "_writer",
        "_writing",
        "failure",
    )

    def __init__(self, sock: socket.socket, limit_bytes: int, on_overflow: Callable[[], None], name: str) -> None:
        super().__init__()
        self._sock = sock
        self._limit = limit_bytes
        self._on_overflow = on_overflow
        self._name = name
        self._wake = threading.Condition(self._lock)
        self._backlog: list[bytes] = []
        self._backlog_bytes = 0  # queued + being written by the writer
        self._writing = False
        self._writer: threading.Thread | None = None
        self._closed = False
        self._closing_line = b""
        self._shutdown_after: int | None = socket.SHUT_RDWR
        self.failure: OSError | None = None

    def send(self, data: bytes) -> None:
        overflow = False
        with self._lock:
            if self._closed:
                return
            if not self._backlog and not self._writing:
                sent = send_nowait(self._sock, data)
                if isinstance(sent, OSError):
                    # The peer is gone; its reader thread will notice and clean up.
                    self.failure = sent
                    self._closed = True
                    return
                if sent == len(data):
                    return
                data = data[sent:]
            self._backlog.append(data)
            self._backlog_bytes += len(data)
            if self._backlog_bytes > self._limit:
                # Cut this client off; the session's overflow hook shuts the socket
                # down, which also unblocks a writer stuck in sendall.
                self._closed = True
                self._backlog.clear()
                self._wake.notify()
                overflow = True
            elif self._writer is None:
                self._writer = threading.Thread(target=self._drain, name=f"writer-{self._name}", daemon=True)
                self._writer.start()
            else:
                self._wake.notify()
        if overflow:
            self._on_overflow()

    def dispose(self) -> None:
        self._sock.close()

    def close(self, last_line: bytes = b"", wake_reader: bool = True, half_close: bool = False) -> None:
        how = shutdown_how(wake_reader, half_close)
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wake.notify()
            if self._writer is not None and (self._backlog or self._writing):
                # Let the writer finish what is queued, then the last line, then shut down.
                self._closing_line = last_line
                self._shutdown_after = how
                return
        if last_line:
            send_nowait(self._sock, last_line)
        shutdown_socket(self._sock, how)

    def _drain(self) -> None:
        sock = self._sock
        while True:
            with self._lock:
                while not self._backlog and not self._closed:
                    self._wake.wait()
                if not self._backlog:  # closed and nothing left to write
                    closing_line = self._closing_line
                    break
                chunk = b"".join(self._backlog) if len(self._backlog) > 1 else self._backlog[0]
                self._backlog.clear()
                self._writing = True
            try:
                sock.sendall(chunk)
            except OSError as exc:
                with self._lock:
                    if not self._closed:
                        self.failure = exc
                    self._closed = True
                    self._backlog.clear()
                    self._backlog_bytes = 0
                    self._writing = False
                return
            with self._lock:
                self._writing = False
                self._backlog_bytes -= len(chunk)
        if closing_line:
            send_nowait(sock, closing_line)
            shutdown_socket(sock, self._shutdown_after)


class ThreadsFanout(HubSendsFanout):
    """A writer thread per backlogged client: the hub sends to each outbox."""

    def __init__(self, send_queue_bytes: int) -> None:
        self._limit = send_queue_bytes

    def outbox(self, sock: socket.socket, on_overflow: OverflowHook, name: str) -> Outbox:
        return ThreadedOutbox(sock, self._limit, on_overflow, name)
