"""One receiving greenlet per Locust process, reading every user's connection.

A greenlet per connection waiting in ``recv`` costs gevent a watcher start,
two switches and a failed ``recv`` per read: about 8 us a read, against
about 4 us for one loop over an ``epoll`` of all the connections (measured
on this project's 2-core machine with 100 connections at 20,000 reads/s).
So, like the swarm's worker, each Locust process reads all its users'
connections from one loop: a real ``epoll`` (gevent's monkey-patching hides
it; :func:`gevent.monkey.get_original` gives it back) whose own descriptor
gevent watches, so the loop sleeps cooperatively until any connection has
bytes, then reads every ready one -- each through the process's one receive
path (:mod:`bench.loadtest.receive`: the kernel's stamp, the adapter, the
recorder) -- and flushes the latencies of the whole round to their labels
and to Locust's rows.  Nothing in a round lets another greenlet run until
that flush (Locust's stats report must find the exact histograms and its own
rows in step): what can wait -- replies to send, the users' hooks, lost
connections handed back -- is done after it.

The loop reads a duplicate of each connection's descriptor through a plain
socket object (never blocking: gevent keeps the descriptor non-blocking);
the user keeps sending on its own, cooperative, socket.  Over TLS
(``--chat-tls``) the user's socket is a :class:`~bench.net.tls.TlsStream`:
the loop still reads the raw descriptor, so the kernel's stamp is the
ciphertext's arrival, and decrypts through the stream's channel after the
read (decryption is the harness's time: it shows in the read lag, never in
the latency), as the swarm's receiver does.  A connection that
ends, fails or says the server is closing it is handed back to its user
(:meth:`Owner.lost`), which reconnects as usual.
"""

from __future__ import annotations

import os
import select
import socket
import time
from dataclasses import dataclass
from typing import Any, Protocol

import gevent
from gevent import monkey

from bench.loadtest.integrity import LEDGER
from bench.loadtest.pacer import pacer
from bench.loadtest.receive import Receiving, receiving
from bench.net.rx import Read, ReceivePath
from bench.net.tls import TlsChannel, TlsFailure, TlsStream
from bench.wire import Adapter, Decoder

#: A round of reads ends after this long (ns), ready connections left for the
#: next one, so the hub runs the other greenlets (the users' tasks) at least
#: that often.  (Probes due meanwhile go out between two reads: the pacer's.)
ROUND_NS = 250_000
#: The receive path's housekeeping (read lags out of their list, the clock
#: offset, the interval's read lag) at most this often.  At 20 ms (the swarm
#: worker's cadence) py-spy put 5% of a Locust process's time in it (a
#: histogram merged and cleared each time); at 100 ms it is about 1%, and an
#: interval's read lag is still that of its reads to within 100 ms.
HOUSEKEEPING_NS = 100_000_000
#: The real epoll (gevent's monkey-patching removes it from ``select``), and
#: the plain socket class (the loop reads without gevent's waiting).
_epoll: Any = monkey.get_original("select", "epoll")
_plain_socket: Any = monkey.get_original("socket", "socket")


class Owner(Protocol):
    """What the loop tells the user a connection belongs to."""

    def received_others(self, conn: Any, texts: list[str]) -> None:
        """Lines that are not deliveries (notices, other chat)."""

    def corrupted(self, count: int) -> None:
        """``count`` damaged probes arrived."""

    def lost(self, conn: Any, exc: Exception) -> None:
        """The connection ended or failed; it is no longer read."""


@dataclass(eq=False, slots=True)
class Member:
    """One connection the loop reads."""

    owner: Owner
    conn: Any  #: the user's connection (bench.loadtest.users.ChatConnection)
    name: str  #: the receiver's name (its integrity tracker)
    own: int  #: its sender id (its own messages are not deliveries)
    sock: Any  #: the user's cooperative socket (replies go out on it)
    raw: socket.socket  #: a plain socket on a duplicate of the descriptor, for reading
    path: ReceivePath
    decoder: Decoder
    line_errors: tuple[type[Exception], ...]
    tls: TlsChannel | None = None  #: the TLS connection's channel (None: plaintext)


class ReceiveLoop:
    """The process's receiving loop (see the module docstring)."""

    def __init__(self, rx: Receiving) -> None:
        self.rx = rx
        self.pid = os.getpid()
        self.epoll = _epoll()
        self.members: dict[int, Member] = {}
        self.greenlet: gevent.Greenlet | None = None
        self._others: list[str] = []
        #: bytes to send back: (member, bytes, already encrypted: TLS's own)
        self._replies: list[tuple[Member, bytes, bool]] = []
        self._hooks: list[tuple[Member, list[str]]] = []
        self._losses: list[tuple[Member, Exception]] = []

    def add(self, owner: Owner, conn: Any, adapter: Adapter, backlog: list[bytes]) -> Member:
        """Read ``conn`` from now on (``backlog``: lines it received with its
        registration, recorded first)."""
        sock = conn.sock
        raw: socket.socket = _plain_socket(fileno=os.dup(sock.fileno()))
        member = Member(
            owner=owner,
            conn=conn,
            name=conn.name,
            own=conn.sender_id,
            sock=sock,
            raw=raw,
            path=ReceivePath(adapter, self.rx.recorder),
            decoder=conn.decoder,
            line_errors=adapter.line_errors,
            tls=sock.channel if isinstance(sock, TlsStream) else None,
        )
        block = b"".join([line + b"\n" for line in backlog])
        if isinstance(sock, TlsStream) and sock.pending():
            # Plaintext the stream decrypted with the registration's records
            # and nobody read yet: it comes before anything read from now on.
            block += member.decoder.feed_block(sock.recv(sock.pending()))
        if block:
            self._take_backlog(member, block)
        self.members[raw.fileno()] = member
        self.epoll.register(raw.fileno(), select.EPOLLIN)
        if self.greenlet is None or self.greenlet.dead:
            self.greenlet = gevent.spawn(self._run)
        return member

    def _take_backlog(self, member: Member, block: bytes) -> None:
        """The whole lines a connection received before the loop reads it."""
        tracker = LEDGER.tracker(member.name)
        incoming = member.path.take_block(tracker, member.own, block, time.monotonic_ns(), self._others)
        self.rx.labels.flush()
        others, self._others = self._others, []
        if others:
            member.owner.received_others(member.conn, others)
        if incoming.reply:
            member.sock.sendall(incoming.reply)

    def remove(self, member: Member) -> None:
        """Stop reading ``member`` (idempotent)."""
        fd = member.raw.fileno()
        if fd < 0 or self.members.get(fd) is not member:
            return
        del self.members[fd]
        try:
            self.epoll.unregister(fd)
        except OSError:
            pass
        member.raw.close()

    def _run(self) -> None:
        hub = gevent.get_hub()
        watcher = hub.loop.io(self.epoll.fileno(), 1)
        poll = self.epoll.poll
        members = self.members
        recorder = self.rx.recorder
        sends = pacer()
        due, emit_due = sends.heap, sends.emit_due
        housekeeping_at = 0
        while True:
            hub.wait(watcher)
            got = 0
            before = recorder.delivered_all
            end = time.monotonic_ns() + ROUND_NS
            for fd, _events in poll(0):
                member = members.get(fd)
                if member is None:
                    continue
                try:
                    got += self._read(member)
                except Exception as exc:  # a bug on one connection ends that one, not the loop
                    self._lost(member, exc)
                now = time.monotonic_ns()
                if due and due[0][0] <= now:
                    emit_due(now)  # probes due meanwhile go out now, as the swarm's worker sends them
                if now > end:
                    break  # the others stay readable: the next round reads them first
            delivered = recorder.delivered_all - before
            # The round's latencies to their labels and to Locust, at once.
            self.rx.labels.flush(got // delivered if delivered else 0)
            after = time.monotonic_ns()
            if after >= housekeeping_at:
                housekeeping_at = after + HOUSEKEEPING_NS
                self.rx.housekeeping(time.time_ns())
            if self._replies or self._hooks or self._losses:
                self._after_round()

    def _after_round(self) -> None:
        """What may let other greenlets run: replies, hooks, lost connections."""
        replies, self._replies = self._replies, []
        hooks, self._hooks = self._hooks, []
        losses, self._losses = self._losses, []
        for member, data, encrypted in replies:
            if member.raw.fileno() < 0:
                continue  # lost meanwhile
            try:
                if encrypted:
                    member.sock.sendall_records(data)
                else:
                    member.sock.sendall(data)
            except OSError as failed:
                self.remove(member)
                losses.append((member, failed))
        for member, texts in hooks:
            member.owner.received_others(member.conn, texts)
        for member, reason in losses:
            member.owner.lost(member.conn, reason)

    def _read(self, member: Member) -> int:
        """One read of a ready connection through the receive path; the bytes read."""
        try:
            read = self.rx.reader.read(member.raw)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:
            self._lost(member, exc)
            return 0
        data = read.data
        if not data:
            self._lost(member, ConnectionError("server closed the connection"))
            return 0
        if member.tls is not None:
            got = len(data)
            try:
                data = member.tls.decrypt(data)
            except TlsFailure as exc:
                self._lost(member, exc)
                return got
            out = member.tls.pending_output()  # TLS's own answer (a key update's)
            if out:
                self._replies.append((member, out, True))
            if member.tls.closed:
                self._lost(member, ConnectionError("server closed the connection (TLS close_notify)"))
            if not data:
                return got  # a record still arriving, or TLS's own messages
            read = Read(data, read.arrival_ns)
        tracker = LEDGER.tracker(member.name)
        corrupted = tracker.corrupted
        others = self._others
        try:
            incoming = member.path.take(member.decoder, tracker, member.own, read, others)
        except member.line_errors as exc:
            self._lost(member, exc)
            return len(data)
        if tracker.corrupted != corrupted:
            member.owner.corrupted(tracker.corrupted - corrupted)
        if others:
            self._hooks.append((member, others[:]))
            others.clear()
        if incoming.reply:
            self._replies.append((member, incoming.reply, False))
        if incoming.ended is not None:
            self._lost(member, ConnectionError(f"disconnected by server: {incoming.ended}"))
        return len(data)

    def _lost(self, member: Member, exc: Exception) -> None:
        """Stop reading ``member`` now; its owner hears of it after the round."""
        self.remove(member)
        self._losses.append((member, exc))


_loop: ReceiveLoop | None = None


def receive_loop() -> ReceiveLoop:
    """This process's receiving loop (a forked ``--processes`` child gets its own)."""
    global _loop
    if _loop is None or _loop.pid != os.getpid():
        _loop = ReceiveLoop(receiving())
    return _loop
