"""What the pub/sub broker adapters (Redis, NATS, MQTT) share.

A broker has no chat names and no chat lines: a client subscribes to one
topic (the room) and publishes opaque payloads to it.  The harness makes a
broker look like a chat server to the rest of the swarm:

* a sender publishes ``NAME: PROBE`` -- a probe line
  (:mod:`bench.measure.probeline`), what our server would have relayed --
  as the payload (:meth:`BrokerAdapter.encode_message`), so a received
  payload carries its sender's name, and the four integrity counters, the
  sender-name check and the latency work as for any chat server;
* each protocol's decoder cuts received bytes into frames and gives one
  "line" per frame that matters: a delivered payload as it is, anything the
  registration or the worker must see (a subscription confirmed, a ``PING``,
  an error, the broker closing the connection) as a *control line* that
  starts with :data:`CONTROL_MARK`, which no chat line can start with (it is
  in :data:`server.protocol.names.RESERVED_FIRST`); acknowledgements nobody
  needs (Redis's subscriber count per ``PUBLISH``) give no line at all.

So a block of payloads is a block of probe lines the recorder takes as it is
(:meth:`BrokerAdapter.deliveries`), and when control lines are among them
the adapter answers ``PING``, reports the broker's reason for closing, and
hands on the payloads.

Rooms: a plan's room ``r12`` is the topic ``chatbench<SEP>r12`` (``SEP``:
``/`` for MQTT's topic levels, ``.`` for NATS subjects and Redis channels;
the target's one room is the topic itself).  A client subscribes to each of
its rooms' topics and publishes to one; in a workload of several rooms a
decoder puts ``#r12 `` before each payload delivered on ``chatbench<SEP>r12``
(:class:`RoomPrefixes`), so the delivery reads ``#r12 NAME: PROBE``, a
room's probe line, named by the topic it came on.
"""

from __future__ import annotations

import abc
from typing import ClassVar

from bench.wire.base import Adapter, Incoming, ProtocolInfo, Step

#: First bytes of a control line (see the module docstring).
CONTROL_MARK = b"* "
#: Control-line kinds a decoder gives.
PING = b"* ping"
PONG = b"* pong"
ERROR = b"* error "  #: + the broker's text: the connection is (being) refused or closed
READY = b"* ready"  #: a subscription (or the connection, for a publisher) is confirmed

#: Largest frame a decoder holds while it arrives.  A probe with the default
#: 64-byte payload is ~120 bytes; NATS's default ``max_payload`` is 1 MiB, so
#: no broker here sends a real message past this.  A longer frame is
#: malformed or foreign and ends the connection (:class:`FrameError`).
MAX_FRAME_BYTES = 1 << 20
#: Longest chat text a sender may publish: the frame limit less room for the
#: sender's name and the protocol's own header.
MAX_TEXT_BYTES = MAX_FRAME_BYTES - 4096


class FrameError(Exception):
    """Received bytes that are not a valid frame of the protocol (or one past
    :data:`MAX_FRAME_BYTES`): the connection cannot continue."""


def error_line(text: str | bytes) -> bytes:
    """A control line carrying the broker's reason (newlines flattened)."""
    raw = text.encode("utf-8", "replace") if isinstance(text, str) else text
    return ERROR + raw.replace(b"\r", b" ").replace(b"\n", b" ")[:200]


def deliveries_block(lines: list[bytes]) -> bytes:
    """A decoder's lines as one block, each ending in ``\\n``."""
    if not lines:
        return b""
    return b"\n".join(lines) + b"\n"


#: Most topics a decoder remembers the room prefix of (a run's clients are
#: in a few rooms each; a broker delivers only on what they subscribed to).
MAX_PREFIXES = 4096


class RoomPrefixes:
    """Topic -> the prefix ``#ROOM `` of its room's deliveries (see the
    module docstring); ``b""`` for the one room's topic, and for any topic
    not of this run's form ``#?TOPIC `` (no stream's name: a fault)."""

    __slots__ = ("_cache", "_stem", "base")

    def __init__(self, base: str, separator: str) -> None:
        self.base = base.encode()
        self._stem = (base + separator).encode()
        self._cache: dict[bytes, bytes] = {}

    def __call__(self, topic: bytes) -> bytes:
        prefix = self._cache.get(topic)
        if prefix is None:
            if topic == self.base:
                prefix = b""
            elif topic.startswith(self._stem) and len(topic) > len(self._stem):
                prefix = b"#" + topic[len(self._stem) :] + b" "
            else:
                prefix = b"#?" + topic + b" "
            if len(self._cache) < MAX_PREFIXES:
                self._cache[topic] = prefix
        return prefix


class BrokerRegistration:
    """A broker connection's registration: send ``greeting``; answer a line
    in ``answers`` with its bytes; done on the ``count``-th line in
    ``done_on`` (one per subscription, for a broker that confirms each); an
    error line refuses the connection with the broker's words."""

    __slots__ = ("answers", "count", "done_on", "greeting")

    def __init__(
        self,
        greeting: bytes,
        done_on: frozenset[bytes],
        answers: dict[bytes, bytes] | None = None,
        count: int = 1,
    ) -> None:
        self.greeting = greeting
        self.done_on = done_on
        self.answers = answers or {}
        self.count = count

    def connected(self) -> bytes:
        return self.greeting

    def line(self, line: bytes) -> Step:
        if line in self.done_on:
            self.count -= 1
            return Step(done=self.count <= 0)
        answer = self.answers.get(line)
        if answer is not None:
            return Step(send=answer)
        if line.startswith(ERROR):
            return Step(error=f"refused: {line[len(ERROR) : len(ERROR) + 60].decode('utf-8', 'replace')}")
        return Step()


class BrokerAdapter(Adapter):
    """A pub/sub broker as the harness speaks it (see the module docstring).
    Subclasses give the decoder, the registrations and :meth:`publish`."""

    replies_needed = True
    line_errors: ClassVar[tuple[type[Exception], ...]] = (FrameError,)
    #: How a sender is kept from receiving its own messages (the result says).
    self_delivery: ClassVar[str]
    #: Between the topic and a room's name in a room's topic.
    separator: ClassVar[str] = "."

    def __init__(self, topic: str = "chatbench") -> None:
        self.topic = topic

    def room_topic(self, room: str) -> str:
        """A plan's room as a topic (the one room: :attr:`topic`)."""
        return f"{self.topic}{self.separator}{room}" if room else self.topic

    def room_prefixes(self) -> RoomPrefixes | None:
        """What a decoder of this adapter puts before a room's deliveries;
        None with one room (the payloads go as they are)."""
        return RoomPrefixes(self.topic, self.separator) if self.rooms else None

    @abc.abstractmethod
    def publish(self, payload: bytes, room: str = "") -> bytes:
        """One payload published to ``room``'s topic, framed for sending."""

    @abc.abstractmethod
    def pong(self) -> bytes:
        """The answer to a broker's ``PING``."""

    def encode_chat(self, text: str) -> bytes:
        return self.publish(text.encode("utf-8"))

    def encode_message(self, sender: str, text: str, room: str = "") -> bytes:
        return self.publish(f"{sender}: {text}".encode(), room)

    def check_text(self, text: str, room: str = "") -> str | None:
        raw = text.encode("utf-8")
        if b"\n" in raw:
            return f"{self.name} payloads the harness sends hold one line (no LF)"
        if len(raw) > MAX_TEXT_BYTES:
            return f"a {len(raw)}-byte message is over the harness's {MAX_TEXT_BYTES}-byte broker payload limit"
        return None

    def deliveries(self, block: bytes) -> Incoming:
        """The payloads as they are when the block holds nothing else;
        otherwise the control lines taken out (a ``PING`` answered, an error
        the end of the connection)."""
        if b"\n* " not in block and not block.startswith(CONTROL_MARK):
            return Incoming(lines=block)
        out: list[bytes] = []
        reply = b""
        ended: str | None = None
        for line in block.split(b"\n")[:-1]:
            if not line.startswith(CONTROL_MARK):
                out.append(line)
            elif line == PING:
                reply += self.pong()
            elif line.startswith(ERROR):
                ended = f"{self.name}: " + line[len(ERROR) :].decode("utf-8", "replace")
        return Incoming(lines=deliveries_block(out), reply=reply, ended=ended)

    def control(self, text: str) -> str | None:
        if text.startswith(ERROR.decode()):
            return f"{self.name}: " + text[len(ERROR) :]
        return None

    def describe(self) -> ProtocolInfo:
        return {"protocol": self.name, "topic": self.topic, "self_delivery": self.self_delivery}
