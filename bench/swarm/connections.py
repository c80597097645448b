"""A worker's connections: per-connection state, the selector, and how one ends.

:class:`Conn` is one client socket and everything the worker's three parts
(:mod:`~bench.swarm.registrar`, :mod:`~bench.swarm.sender`,
:mod:`~bench.swarm.receiver`) keep about it; :class:`Sockets` owns the
selector and the open connections.
"""

from __future__ import annotations

import selectors
import socket
from collections import Counter, deque
from dataclasses import dataclass, field

from bench.measure.integrity import IntegrityTracker
from bench.net.tls import TlsChannel
from bench.swarm.plan import ClientSpec
from bench.wire import Decoder, Registration

#: A connection's states, in the order it goes through them (STALLED: a
#: registered stalled client, never read again).
CONNECTING, REGISTERING, READY, STALLED, CLOSED = range(5)

#: ``out_lens`` entries at or above this are bytes that are not a chat message
#: (a ``PONG``): their length is the entry minus this, and they are not counted.
CONTROL = 1 << 40


@dataclass(slots=True)
class Conn:
    """One client connection."""

    spec: ClientSpec
    sock: socket.socket
    decoder: Decoder
    registration: Registration
    fd: int = -1
    state: int = CONNECTING
    deadline_ns: int = 0
    stalled: bool = False  #: a stalled client (registers, then is never read)
    tracker: IntegrityTracker | None = None  #: set once a measured receiver is registered
    #: over TLS: the connection's channel (``outbuf`` then holds records, reads are decrypted)
    tls: TlsChannel | None = None
    # connection setup (monotonic ns; 0: not yet): connect() called, TCP up, TLS up
    opened_ns: int = 0
    up_ns: int = 0
    secured_ns: int = 0
    # sending
    outbuf: bytearray = field(default_factory=bytearray)
    out_lens: deque[int] = field(default_factory=deque)
    #: the stream of each message in ``out_lens`` (not of control bytes), in order
    out_streams: deque[int] = field(default_factory=deque)
    out_head_done: int = 0  #: bytes of out_lens[0] already written
    sent: int = 0
    measured_sent: int = 0
    sent_by: dict[int, int] = field(default_factory=dict)  #: stream id -> messages handed to the kernel
    measured_by: dict[int, int] = field(default_factory=dict)  #: stream id -> measured ones of those
    writing: bool = False
    end_reason: str | None = None  #: why the server said it ends the connection


class Sockets:
    """The selector over a worker's open connections (fd -> :class:`Conn`)."""

    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self.conns: dict[int, Conn] = {}
        #: why registered connections ended during the run (reason -> count)
        self.disconnects: Counter[str] = Counter()

    def add(self, conn: Conn) -> None:
        """A connection whose ``connect`` is under way (writable when done)."""
        self.conns[conn.fd] = conn
        self.sel.register(conn.sock, selectors.EVENT_WRITE, conn)

    def want_write(self, conn: Conn, on: bool) -> None:
        """Wake on writability too (bytes are queued) or only on reads."""
        conn.writing = on
        self.sel.modify(conn.sock, selectors.EVENT_READ | (selectors.EVENT_WRITE if on else 0), conn)

    def forget(self, conn: Conn) -> None:
        """Stop watching ``conn`` (a stalled client: open, never read again)."""
        self.sel.unregister(conn.sock)

    def drop(self, conn: Conn) -> None:
        """Close ``conn`` without counting anything."""
        conn.state = CLOSED
        self.conns.pop(conn.fd, None)
        try:
            self.sel.unregister(conn.sock)
        except (KeyError, ValueError):
            pass
        conn.sock.close()

    def close(self, conn: Conn, reason: str | None) -> None:
        """End a registered connection; ``reason`` None when the harness chose to."""
        if conn.state == CLOSED:
            return
        if reason is not None:
            self.disconnects[conn.end_reason or reason] += 1
        if conn.state == STALLED:  # not in the selector any more
            conn.state = CLOSED
            self.conns.pop(conn.fd, None)
            conn.sock.close()
            return
        self.drop(conn)

    def close_all(self, stalled: list[Conn]) -> None:
        """Close every socket (the open ones and the stalled ones) and the selector."""
        for conn in list(self.conns.values()):
            self.drop(conn)
        for conn in stalled:
            conn.sock.close()
        self.sel.close()
