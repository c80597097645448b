"""Redis pub/sub (RESP2) as the harness speaks it; replies parsed by
``hiredis.Reader`` (the sans-IO RESP parser in C that redis-py uses).

A receiver sends ``SUBSCRIBE <topic>...`` (its rooms' channels) and is
registered on the confirmation of each.  A connection in subscribe mode cannot publish, so the senders
are dedicated connections that never subscribe (:attr:`RedisAdapter.senders_receive`
false: the swarm turns ``--dedicated-senders`` on, and a run expects every
message at every receiver); a sender's registration is a ``PING`` answered
by ``PONG``, and the integer reply to each of its ``PUBLISH`` commands gives
no line.
"""

from __future__ import annotations

import hiredis

from bench.wire.base import Decoder, Registration
from bench.wire.broker import (
    MAX_FRAME_BYTES,
    PING,
    PONG,
    READY,
    BrokerAdapter,
    BrokerRegistration,
    FrameError,
    RoomPrefixes,
    deliveries_block,
    error_line,
)
from bench.wire.credentials import LOGIN_USER, Credentials

#: A subscriber is registered once its subscription is confirmed; a sender once its PING is answered.
SUBSCRIBED = frozenset({READY})
PONGED = frozenset({PONG})


def auth(credentials: Credentials | None) -> bytes:
    """``AUTH [user] password`` first when logging in (an ACL user; a
    failure is a ``WRONGPASS`` error, the commands after it ``NOAUTH``)."""
    if credentials is None:
        return b""
    user = (credentials.user.encode(),) if credentials.user is not None else ()
    return command(b"AUTH", *user, credentials.password.encode())


def command(*args: bytes) -> bytes:
    """One command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


class RedisDecoder:
    """RESP2 replies -> lines: a ``message`` push gives its payload, the rest
    control lines (see :mod:`bench.wire.broker`)."""

    __slots__ = ("prefixes", "reader")

    def __init__(self, prefixes: RoomPrefixes | None = None) -> None:
        self.reader = hiredis.Reader()
        #: a workload's rooms: the channel's room before each payload
        self.prefixes = prefixes

    def feed(self, data: bytes) -> list[bytes]:
        reader = self.reader
        try:
            reader.feed(data)
            out: list[bytes] = []
            gets = reader.gets
            reply = gets()
            while reply is not False:
                line = self.line(reply)
                if line is not None:
                    out.append(line)
                reply = gets()
        except hiredis.ProtocolError as exc:
            raise FrameError(f"bad RESP reply: {exc}") from None
        if reader.len() > MAX_FRAME_BYTES:  # the bytes of a reply still incomplete
            raise FrameError(f"a RESP reply over {MAX_FRAME_BYTES} bytes")
        return out

    def feed_block(self, data: bytes) -> bytes:
        return deliveries_block(self.feed(data))

    def line(self, reply: object) -> bytes | None:
        if isinstance(reply, list):
            if len(reply) == 3 and reply[0] == b"message" and isinstance(reply[2], bytes):
                if self.prefixes is not None:
                    return self.prefixes(reply[1]) + reply[2]
                return reply[2]
            if reply and reply[0] == b"subscribe":
                return READY
            if reply and reply[0] == b"pong":
                return PONG
            return None
        if isinstance(reply, hiredis.ReplyError):
            return error_line(str(reply))
        if reply == b"PONG":
            return PONG
        return None  # the receiver count of a PUBLISH, +OK, ...


class RedisAdapter(BrokerAdapter):
    """Redis ``PUBLISH``/``SUBSCRIBE`` over RESP2."""

    name = "redis"
    login = LOGIN_USER
    senders_receive = False
    self_delivery = "none: senders are dedicated connections that never subscribe (Redis cannot publish from one)"

    def decoder(self) -> Decoder:
        return RedisDecoder(self.room_prefixes())

    def registration(
        self, name: str, credentials: Credentials | None = None, rooms: tuple[str, ...] = ("",)
    ) -> Registration:
        channels = [self.room_topic(r).encode() for r in rooms]
        if not channels:
            return self.sender_registration(name, credentials)
        # One confirmation per channel.
        return BrokerRegistration(auth(credentials) + command(b"SUBSCRIBE", *channels), SUBSCRIBED, count=len(channels))

    def sender_registration(
        self, name: str, credentials: Credentials | None = None, rooms: tuple[str, ...] = ("",)
    ) -> Registration:
        return BrokerRegistration(auth(credentials) + command(b"PING"), PONGED)

    def publish(self, payload: bytes, room: str = "") -> bytes:
        return command(b"PUBLISH", self.room_topic(room).encode(), payload)

    def pong(self) -> bytes:
        return b""  # Redis never pings a client


__all__ = ["PING", "RedisAdapter", "RedisDecoder", "command"]
