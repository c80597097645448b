"""NATS core as the harness speaks it, with a small sans-IO codec of its own.

Once TCP is up a client sends ``CONNECT`` (``"verbose": false`` -- no
``+OK`` per command; ``"echo": false`` -- the server never delivers a
client's own messages back to it, so a sender can be a receiver and expects
what a chat server's sender expects), ``SUB <topic> 1`` and ``PING``; the
``PONG`` that follows says the subscription is in place.  Messages are
``PUB <topic> <n>`` and arrive as ``MSG <topic> <sid> [reply-to] <n>``; the
server's ``PING`` is answered with ``PONG``; ``-ERR`` (a slow consumer, a
refused connection) ends the connection with the server's words.

Why by hand: no well-kept sans-IO parser exists for NATS in Python
(``nats-py`` parses inside its asyncio client), and the protocol's framing
is a text line plus, for ``MSG``, a counted payload: one regex match per
message here, about 1 us on this 2-core machine.
"""

from __future__ import annotations

import json
import re

from bench.wire.base import Decoder, Registration
from bench.wire.broker import (
    MAX_FRAME_BYTES,
    PING,
    PONG,
    BrokerAdapter,
    BrokerRegistration,
    FrameError,
    RoomPrefixes,
    deliveries_block,
    error_line,
)
from bench.wire.credentials import LOGIN_USER, Credentials

CRLF = b"\r\n"
#: A ``MSG <subject> <sid> [reply-to] <count>`` line; the count is at most 7
#: digits (:data:`MAX_FRAME_BYTES`: a longer count is a bad line, below).
MSG_LINE = re.compile(rb"MSG ([^ \r\n]+) [^ \r\n]+ (?:[^ \r\n]+ )?(\d{1,7})\r\n")
#: The subscription id of a harness client's first subscription (the next ones count up).
SID = b"1"


def connect(name: str, topic: str | list[str], credentials: Credentials | None = None) -> bytes:
    """``CONNECT`` (no ``+OK``s, no echo; with ``credentials`` their user
    and password), ``SUB`` the topic(s), ``PING``."""
    options: dict[str, object] = {
        "verbose": False,
        "pedantic": False,
        "echo": False,
        "headers": False,
        "name": name,
        "lang": "python",
        "version": "chatbench",
        "protocol": 1,
    }
    if credentials is not None:
        if credentials.user is not None:
            options["user"] = credentials.user
        options["pass"] = credentials.password
    topics = [topic] if isinstance(topic, str) else topic
    subs = b"".join(b"SUB %s %d\r\n" % (t.encode(), int(SID) + i) for i, t in enumerate(topics))
    return b"CONNECT %s\r\n%sPING\r\n" % (json.dumps(options).encode(), subs)


class NatsDecoder:
    """Server operations -> lines: a ``MSG``'s payload, or a control line
    (see :mod:`bench.wire.broker`); ``+OK`` and ``INFO`` give none."""

    __slots__ = ("buf", "prefixes")

    def __init__(self, prefixes: RoomPrefixes | None = None) -> None:
        self.buf = bytearray()
        #: a workload's rooms: the subject's room before each payload
        self.prefixes = prefixes

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        buf = bytes(self.buf)  # matching and slicing bytes is cheaper than a bytearray
        out: list[bytes] = []
        append = out.append
        match = MSG_LINE.match
        prefixes = self.prefixes
        pos = 0
        n = len(buf)
        while pos < n:
            m = match(buf, pos)
            if m is not None:  # the hot path: one MSG, its header matched in one step
                size = int(m[2])
                if size > MAX_FRAME_BYTES:
                    raise FrameError(f"a {size}-byte NATS message is over the {MAX_FRAME_BYTES}-byte limit")
                start = m.end()
                stop = start + size
                if stop + 2 > n:
                    break  # the payload is still arriving
                if buf[stop : stop + 2] != CRLF:
                    raise FrameError("NATS MSG payload not followed by CR LF (wrong byte count)")
                append(buf[start:stop] if prefixes is None else prefixes(m[1]) + buf[start:stop])
                pos = stop + 2
                continue
            end = buf.find(CRLF, pos)
            if end < 0:
                break
            line = self.operation(buf[pos:end])
            pos = end + 2
            if line is not None:
                append(line)
        del self.buf[:pos]
        if len(self.buf) > MAX_FRAME_BYTES:
            raise FrameError(f"a NATS operation over {MAX_FRAME_BYTES} bytes")
        return out

    def feed_block(self, data: bytes) -> bytes:
        return deliveries_block(self.feed(data))

    @staticmethod
    def operation(line: bytes) -> bytes | None:
        op = line.split(b" ", 1)[0].upper()
        if op == b"PING":
            return PING
        if op == b"PONG":
            return PONG
        if op == b"-ERR":
            return error_line(line[5:].strip(b" '"))
        if op in (b"+OK", b"INFO"):
            return None
        if op == b"MSG":  # not in MSG_LINE's form
            raise FrameError(f"bad NATS MSG line: {line[:80]!r}")
        raise FrameError(f"unknown NATS operation: {line[:80]!r}")


class NatsAdapter(BrokerAdapter):
    """NATS core ``PUB``/``SUB`` with ``echo`` off."""

    name = "nats"
    login = LOGIN_USER
    #: NATS sends INFO in plaintext, then the client starts TLS (without the
    #: server's ``handshake_first``, nats-server 2.10.4 and later).
    tls_greeting_first = True
    self_delivery = 'none: CONNECT with "echo": false (a sender receives everyone else\'s messages)'

    def decoder(self) -> Decoder:
        return NatsDecoder(self.room_prefixes())

    def registration(
        self, name: str, credentials: Credentials | None = None, rooms: tuple[str, ...] = ("",)
    ) -> Registration:
        topics = [self.room_topic(r) for r in rooms]
        return BrokerRegistration(connect(name, topics, credentials), frozenset({PONG}), {PING: b"PONG\r\n"})

    def publish(self, payload: bytes, room: str = "") -> bytes:
        return b"PUB %s %d\r\n%s\r\n" % (self.room_topic(room).encode(), len(payload), payload)

    def pong(self) -> bytes:
        return b"PONG\r\n"
