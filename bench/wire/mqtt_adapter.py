"""MQTT 5 at QoS 0 as the harness speaks it, with a small sans-IO codec of its own.

``CONNECT`` (clean start, keep-alive 0: the broker never times a client
out, so no ``PINGREQ`` is needed during a run), ``SUBSCRIBE`` to the room's
topic with **no-local** (MQTT 5: the broker does not send a client's own
messages back to it, so a sender can be a receiver and expects what a chat
server's sender expects -- MQTT 3.1.1 has no such option and would echo
them), done on the ``SUBACK``; messages are QoS 0 ``PUBLISH`` packets.  A
``DISCONNECT`` from the broker (MQTT 5 gives a reason code) ends the
connection with that reason.

Why by hand: ``paho-mqtt`` parses inside its client object (its socket
loop, a ``recv`` per header field, an ``MQTTMessage`` and a callback per
packet), not as a sans-IO codec.  Measured on this 2-core machine, fed the
same in-memory stream of 100,000 QoS 0 ``PUBLISH`` packets of a 64-byte probe:
paho-mqtt 2.1's ``_packet_read`` with an ``on_message`` callback took about
45 us per message, :class:`MqttDecoder` about 1.3 us (0.6 us on a quiet
machine) -- at the 100,000 deliveries/s of 1,000 clients x 100 msg/s, paho
alone would need 4.5 cores.
"""

from __future__ import annotations

from bench.wire.base import Decoder, Registration
from bench.wire.broker import (
    MAX_FRAME_BYTES,
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

#: Control line: the broker accepted the connection (``CONNACK`` success).
CONNECTED = b"* connected"
#: MQTT protocol level 5 (MQTT 5.0).
PROTOCOL_LEVEL = 5
#: CONNECT flags (spec 3.1.2.3): user name, password, clean start.
FLAG_USER, FLAG_PASSWORD, FLAG_CLEAN_START = 0x80, 0x40, 0x02
#: SUBSCRIBE options byte: QoS 0, No Local (bit 2).
SUBSCRIBE_NO_LOCAL_QOS0 = 0x04
#: Packet types (the fixed header's high nibble).
CONNECT, CONNACK, PUBLISH, SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 1, 2, 3, 8, 9, 12, 13, 14
#: The first byte of a QoS 0 PUBLISH without DUP or RETAIN (what a broker relays).
PUBLISH_QOS0 = PUBLISH << 4
#: Packet types a broker never sends a client.
CLIENT_ONLY = frozenset({0, CONNECT, SUBSCRIBE, 10, PINGREQ})
#: MQTT 5 reason codes a broker may end or refuse a connection with (spec 2.4).
REASONS = {
    0x80: "unspecified error",
    0x81: "malformed packet",
    0x82: "protocol error",
    0x84: "unsupported protocol version",
    0x85: "client identifier not valid",
    0x86: "bad user name or password",
    0x87: "not authorized",
    0x89: "server busy",
    0x8B: "server shutting down",
    0x8D: "keep alive timeout",
    0x8E: "session taken over",
    0x93: "receive maximum exceeded",
    0x95: "packet too large",
    0x96: "message rate too high",
    0x97: "quota exceeded",
    0x9F: "connection rate exceeded",
}


def varint(n: int) -> bytes:
    """MQTT's variable byte integer."""
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def string(text: bytes) -> bytes:
    """A length-prefixed UTF-8 string."""
    return len(text).to_bytes(2, "big") + text


def packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + varint(len(body)) + body


def connect(client_id: str, credentials: Credentials | None = None) -> bytes:
    """``CONNECT``: MQTT 5, clean start, keep-alive 0, no properties; with
    ``credentials``, their user name and password (spec 3.1.3.5-6)."""
    flags = FLAG_CLEAN_START
    login = b""
    if credentials is not None:
        if credentials.user is not None:
            flags |= FLAG_USER
            login += string(credentials.user.encode())
        flags |= FLAG_PASSWORD
        login += string(credentials.password.encode())
    head = string(b"MQTT") + bytes((PROTOCOL_LEVEL, flags, 0, 0, 0))
    return packet(CONNECT << 4, head + string(client_id.encode()) + login)


def subscribe(topic: str | list[str]) -> bytes:
    """``SUBSCRIBE`` packet id 1, no properties, the topic(s) at QoS 0 with no-local."""
    topics = [topic] if isinstance(topic, str) else topic
    filters = b"".join(string(t.encode()) + bytes((SUBSCRIBE_NO_LOCAL_QOS0,)) for t in topics)
    return packet(SUBSCRIBE << 4 | 0x02, b"\x00\x01\x00" + filters)


def reason(code: int) -> str:
    return f"reason 0x{code:02x} ({REASONS.get(code, 'unknown')})"


def read_varint(buf: bytearray | bytes, pos: int) -> tuple[int, int] | None:
    """(value, position after it), None if incomplete; :class:`FrameError` past 4 bytes."""
    value = 0
    for i in range(4):
        if pos + i >= len(buf):
            return None
        byte = buf[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos + i + 1
    raise FrameError("malformed MQTT variable byte integer (more than 4 bytes)")


class MqttDecoder:
    """Broker packets -> lines: a ``PUBLISH``'s payload, or a control line
    (see :mod:`bench.wire.broker`)."""

    __slots__ = ("buf", "prefixes")

    def __init__(self, prefixes: RoomPrefixes | None = None) -> None:
        self.buf = bytearray()
        #: a workload's rooms: the topic's room before each payload
        self.prefixes = prefixes

    def feed(self, data: bytes) -> list[bytes]:
        self.buf += data
        buf = bytes(self.buf)  # slicing bytes is cheaper than slicing a bytearray
        out: list[bytes] = []
        append = out.append
        prefixes = self.prefixes
        pos = 0
        n = len(buf)
        while pos + 2 <= n:
            first = buf[pos]
            size = buf[pos + 1]
            if size < 0x80:  # a packet under 128 bytes: one length byte
                start = pos + 2
            else:
                got = read_varint(buf, pos + 1)
                if got is None:
                    break
                size, start = got
                if size > MAX_FRAME_BYTES:
                    raise FrameError(f"a {size}-byte MQTT packet is over the {MAX_FRAME_BYTES}-byte limit")
            stop = start + size
            if stop > n:
                break
            if first == PUBLISH_QOS0 and size >= 3:
                # The hot path: topic length, topic, properties length (one byte when < 128), payload.
                props = start + 2 + (buf[start] << 8 | buf[start + 1])
                if props < stop and buf[props] < 0x80 and props + 1 + buf[props] <= stop:
                    if prefixes is None:
                        append(buf[props + 1 + buf[props] : stop])
                    else:
                        append(prefixes(buf[start + 2 : props]) + buf[props + 1 + buf[props] : stop])
                    pos = stop
                    continue
            line = self.packet(first, buf[start:stop], prefixes)
            if line is not None:
                append(line)
            pos = stop
        del self.buf[:pos]
        return out

    def feed_block(self, data: bytes) -> bytes:
        return deliveries_block(self.feed(data))

    @staticmethod
    def packet(first: int, body: bytes, prefixes: RoomPrefixes | None = None) -> bytes | None:
        kind = first >> 4
        if kind == PUBLISH:
            payload = publish_payload(first, body)
            return payload if prefixes is None else prefixes(body[2 : 2 + int.from_bytes(body[:2], "big")]) + payload
        if kind == CONNACK:
            if len(body) < 2:
                raise FrameError("MQTT CONNACK shorter than 2 bytes")
            return CONNECTED if body[1] == 0 else error_line(f"CONNACK {reason(body[1])}")
        if kind == SUBACK:
            got = read_varint(body, 2) if len(body) >= 3 else None
            if got is None or got[1] + got[0] >= len(body):
                raise FrameError("MQTT SUBACK without a reason code")
            # One reason code per topic filter subscribed.
            refused = [code for code in body[got[1] + got[0] :] if code >= 0x80]
            return error_line(f"SUBACK {reason(refused[0])}") if refused else READY
        if kind == DISCONNECT:
            return error_line(f"DISCONNECT {reason(body[0]) if body else 'reason 0x00 (normal)'}")
        if kind == PINGRESP:
            return PONG
        if kind in CLIENT_ONLY:
            raise FrameError(f"MQTT packet type {kind} is never sent by a broker")
        return None


def publish_payload(first: int, body: bytes) -> bytes:
    """A ``PUBLISH`` packet's payload (MQTT 5: after the topic, the packet id
    at QoS > 0 and the properties)."""
    qos = (first >> 1) & 3
    if qos == 3 or len(body) < 2:
        raise FrameError("malformed MQTT PUBLISH (QoS 3 or no topic)")
    pos = 2 + int.from_bytes(body[:2], "big") + (2 if qos else 0)
    got = read_varint(body, pos)
    if got is None or got[1] + got[0] > len(body):
        raise FrameError("malformed MQTT PUBLISH (properties past the packet)")
    return body[got[1] + got[0] :]


class MqttAdapter(BrokerAdapter):
    """MQTT 5, QoS 0, no-local subscriptions."""

    name = "mqtt"
    login = LOGIN_USER
    self_delivery = "none: MQTT 5 no-local subscriptions (a sender receives everyone else's messages)"

    #: MQTT topics are levels: a room's topic is ``chatbench/r12``.
    separator = "/"

    def __init__(self, topic: str = "chatbench") -> None:
        super().__init__(topic)
        self._head = bytes((PUBLISH << 4,))
        #: room -> its topic's bytes as a PUBLISH carries them, with no properties
        self._topics: dict[str, bytes] = {"": string(topic.encode()) + b"\x00"}

    def decoder(self) -> Decoder:
        return MqttDecoder(self.room_prefixes())

    def registration(
        self, name: str, credentials: Credentials | None = None, rooms: tuple[str, ...] = ("",)
    ) -> Registration:
        # CONNECT; on the CONNACK, SUBSCRIBE (no-local) to every room's topic; done on the SUBACK.
        hello = connect(name, credentials)
        if not rooms:
            return BrokerRegistration(hello, frozenset({CONNECTED}))
        topics = [self.room_topic(r) for r in rooms]
        return BrokerRegistration(hello, frozenset({READY}), {CONNECTED: subscribe(topics)})

    def publish(self, payload: bytes, room: str = "") -> bytes:
        topic = self._topics.get(room)
        if topic is None:
            topic = self._topics[room] = string(self.room_topic(room).encode()) + b"\x00"
        body = topic + payload
        return self._head + varint(len(body)) + body

    def pong(self) -> bytes:
        return b""  # brokers never ping a client
