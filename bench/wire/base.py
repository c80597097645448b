"""The one interface between the harness and a wire protocol.

A driver (the swarm worker, the gate, the Locust users, the studies, tests)
moves bytes; an :class:`Adapter` says what they mean.  Per connection it gives

* a **decoder** (:class:`Decoder`: received bytes -> lines, or one block of
  whole lines; a "line" is the protocol's unit: a text line, a frame, a
  broker's delivered payload),
* a **registration** state machine (:class:`Registration`): the bytes to send
  once TCP is up, and for each line received before the connection is ready,
  a :class:`Step` -- bytes to answer with, "done" (registered and in the
  room), or an error that ends the attempt;

and for traffic

* :meth:`Adapter.encode_message` -- a message framed for sending (to one of
  the client's rooms), and :meth:`Adapter.check_text`, whether a message
  fits the protocol's limits;
* :meth:`Adapter.deliveries` -- a received block (what
  :meth:`Decoder.feed_block` returned) as :class:`Incoming`: the deliveries
  in the form the recorder takes straight from the protocol's framing -- a
  block of probe lines ``NAME: PROBE`` where the framing carries them so
  (:mod:`bench.measure.probeline`), or ``(name, text)`` pairs -- plus bytes
  that must be sent back at once (``PONG``) and whether the server said it
  is closing the connection;
* :meth:`Adapter.control` -- a line the recorder did not take as a delivery
  (a notice): the reason if it says the server is ending the connection;

and for membership over time (churn, :mod:`bench.swarm.churn`)

* :meth:`Adapter.encode_quit` -- the protocol's goodbye (our ``/quit``, IRC
  ``QUIT``, MQTT ``DISCONNECT``; nothing where the protocol has none: the
  client then only closes its side);
* :meth:`Adapter.split_notices` -- the server's join and leave notices
  (:attr:`Adapter.notices`) taken out of a received block, with the names
  they are about.

**Rooms** (a workload's, :mod:`bench.workload`): a plan's room is a name
(``r12``; ``""`` for the target's one room) that each protocol spells its
own way -- our server's ``#r12``, an IRC channel, a broker topic.  A
registration joins (subscribes to) the client's rooms; a message goes to one
room; and every delivery said in a room other than the one room comes out of
:meth:`Adapter.deliveries` under the name ``#r12 SENDER`` (a probe line
``#r12 SENDER: PROBE``, or that name in a pair), taken from where the
protocol says the room (our server's room line, the channel of a
``PRIVMSG``, the topic a broker delivered on), so a delivery in the wrong
room never passes as one.  An adapter whose protocol has no rooms says so
(:attr:`Adapter.rooms`); :func:`bench.wire.get` with ``rooms=True`` gives an
adapter whose decoders look at the room of every delivery.

Nothing here does I/O: every method is a pure function of its arguments and
the adapter's (or the registration's) own state.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import ClassVar, NotRequired, Protocol, TypedDict

from bench.wire.credentials import LOGIN_NONE, Credentials


class ProtocolInfo(TypedDict):
    """:meth:`Adapter.describe`: the protocol's settings (chat has no others)."""

    protocol: str
    channel: NotRequired[str]  #: IRC: the channel every client joins
    max_text_bytes: NotRequired[int]  #: IRC: the longest chat text one line carries
    topic: NotRequired[str]  #: brokers: the topic/channel/subject of the room
    self_delivery: NotRequired[str]  #: brokers: how a sender's own messages are kept from it


class Decoder(Protocol):
    """Received bytes -> complete lines, holding a bounded partial line."""

    def feed(self, data: bytes) -> list[bytes]:
        """The complete lines (without terminators) ``data`` finishes."""
        ...

    def feed_block(self, data: bytes) -> bytes:
        """Like :meth:`feed`, but the complete lines as one block, each with
        its line ending as received."""
        ...


@dataclass(frozen=True, slots=True)
class Step:
    """What one received registration line calls for."""

    send: bytes = b""  #: to send now
    done: bool = False  #: registered: later lines are traffic
    error: str | None = None  #: the attempt failed (reason, short)


class Registration(Protocol):
    """One connection's registration, an I/O-free state machine."""

    def connected(self) -> bytes:
        """Bytes to send once the TCP connection is up (may be empty)."""
        ...

    def line(self, line: bytes) -> Step:
        """One received line (without terminator) while registering."""
        ...


#: A delivery as a protocol without probe lines hands it over: the name it
#: arrived under (None: the protocol carries no names) and the message text.
Pair = tuple["bytes | None", bytes]


@dataclass(slots=True)
class Incoming:
    """What one received block holds (see :meth:`Adapter.deliveries`)."""

    #: complete lines, each ending in ``\n``, for :meth:`DeliveryRecorder.record_lines`:
    #: probe lines and whatever else the server said (notices come back to :meth:`Adapter.control`)
    lines: bytes = b""
    #: deliveries straight from the framing, for :meth:`DeliveryRecorder.record_pairs`
    pairs: list[Pair] = field(default_factory=list)
    reply: bytes = b""  #: to send back at once (e.g. PONG)
    ended: str | None = None  #: the server is closing the connection, and why


class Adapter(abc.ABC):
    """One wire protocol, as the harness speaks it (see the module docstring)."""

    name: ClassVar[str]
    #: The server expects answers during traffic (PING): connections that do
    #: not measure must still be read and parsed.
    replies_needed: ClassVar[bool]
    #: Exceptions the decoder raises for a line past its limit.
    line_errors: ClassVar[tuple[type[Exception], ...]]
    #: A sender can also be a receiver (false for Redis, where a subscribed
    #: connection cannot publish: the swarm then makes the senders dedicated
    #: connections and registers them with :meth:`sender_registration`).
    senders_receive: ClassVar[bool] = True
    #: Why the protocol cannot carry a workload's rooms; None: it can.
    no_rooms: ClassVar[str | None] = None
    #: This adapter's decoders look at each delivery's room (set by
    #: :func:`bench.wire.get` for a workload of several rooms).
    rooms: bool = False
    #: What the server tells the others when someone joins or leaves (for the
    #: result); None: the protocol has no such notices (the brokers).
    notices: ClassVar[str | None] = None
    #: How the protocol logs in (:data:`bench.wire.credentials.LOGINS`): what
    #: a registration does with the :class:`Credentials` it is given.
    login: ClassVar[str] = LOGIN_NONE
    #: Over TLS, the server speaks one plaintext line before the handshake
    #: (NATS's ``INFO``; :class:`bench.net.tls.TlsChannel` waits for it).
    tls_greeting_first: ClassVar[bool] = False

    @abc.abstractmethod
    def decoder(self) -> Decoder:
        """A fresh decoder for one connection."""

    @abc.abstractmethod
    def registration(
        self, name: str, credentials: Credentials | None = None, rooms: tuple[str, ...] = ("",)
    ) -> Registration:
        """A fresh registration for a client called ``name``, logging in
        with ``credentials`` where given (see :mod:`bench.wire.credentials`),
        in ``rooms``."""

    def sender_registration(
        self, name: str, credentials: Credentials | None = None, rooms: tuple[str, ...] = ("",)
    ) -> Registration:
        """The registration of a dedicated sender (one that does not
        receive) that sends to ``rooms``."""
        return self.registration(name, credentials, rooms)

    @abc.abstractmethod
    def encode_chat(self, text: str) -> bytes:
        """One chat message, framed for sending."""

    def encode_message(self, sender: str, text: str, room: str = "") -> bytes:
        """One chat message from ``sender`` to ``room``, framed for sending
        (a broker has no names: its adapter puts the sender's name in the payload)."""
        return self.encode_chat(text)

    @abc.abstractmethod
    def check_text(self, text: str, room: str = "") -> str | None:
        """Why ``text`` cannot be sent as one message (to ``room``), or None if it can."""

    def deliveries(self, block: bytes) -> Incoming:
        """A received block of whole lines (:meth:`Decoder.feed_block`) as
        :class:`Incoming`.  The default: the lines are probe lines as they
        are (a protocol whose server relays ``NAME: TEXT``)."""
        return Incoming(lines=block)

    def control(self, text: str) -> str | None:
        """A received line the recorder did not take (not a delivery): the
        reason if it says the server is closing the connection."""
        return None

    def encode_quit(self) -> bytes:
        """The protocol's goodbye, sent before a client closes its side
        (empty: the protocol has none; the close itself says it)."""
        return b""

    def split_notices(self, block: bytes) -> tuple[bytes, list[bytes], list[bytes]]:
        """``block`` without the server's join and leave notices (one room:
        our ``*** NAME joined the chat`` / ``left the chat (...)``, IRC's
        ``JOIN`` / ``QUIT``), and the names joined and left.  The default:
        no notices."""
        return block, [], []

    def strip_notices(self, block: bytes) -> bytes:
        """``block`` without the server's join and leave notices, for a
        receiver that does not count them (a churn run's churning seats:
        most of its receivers).  Override where that is cheaper than
        :meth:`split_notices`."""
        return self.split_notices(block)[0]

    def describe(self) -> ProtocolInfo:
        """What a result document records about the protocol."""
        return {"protocol": self.name}
