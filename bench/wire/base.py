"""The one interface between the harness and a wire protocol.

A driver (the swarm worker, the gate, the Locust users, tests) moves bytes;
an :class:`Adapter` says what they mean.  Per connection it gives

* a **decoder** (:class:`Decoder`: received bytes -> lines, or one block of
  whole lines),
* a **registration** state machine (:class:`Registration`): the bytes to send
  once TCP is up, and for each line received before the connection is ready,
  a :class:`Step` -- bytes to answer with, "done" (registered and in the
  room), or an error that ends the attempt;

and for traffic

* :meth:`Adapter.encode_chat` -- a chat message framed for sending, and
  :meth:`Adapter.check_text`, whether a message fits the protocol's limits;
* :meth:`Adapter.translate_block` -- the fast path for a whole block of
  received lines: the chat lines the recorder reads, or None when the block
  needs the per-line path;
* :meth:`Adapter.incoming` -- received lines classified: deliveries in the
  form :class:`bench.measure.recorder.DeliveryRecorder` reads (our chat
  protocol's ``NAME: TEXT`` lines), bytes that must be sent back at once
  (``PONG``), and whether the server said it is closing the connection.  An
  adapter whose deliveries already are chat lines (:attr:`Adapter.translates`
  false) is skipped here, and :meth:`Adapter.control` looks at the lines the
  recorder did not take.

Nothing here does I/O: every method is a pure function of its arguments and
the adapter's (or the registration's) own state.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, NotRequired, Protocol, TypedDict


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


@dataclass(slots=True)
class Incoming:
    """Received traffic lines, classified."""

    lines: list[bytes] = field(default_factory=list)  #: chat-protocol lines for the recorder
    reply: bytes = b""  #: to send back at once (e.g. PONG)
    ended: str | None = None  #: the server is closing the connection, and why


class Adapter(abc.ABC):
    """One wire protocol, as the harness speaks it (see the module docstring)."""

    name: ClassVar[str]
    #: Received lines must go through :meth:`incoming` before the recorder.
    translates: ClassVar[bool]
    #: The server expects answers during traffic (PING): connections that do
    #: not measure must still be read and parsed.
    replies_needed: ClassVar[bool]
    #: Exceptions the decoder raises for a line past its limit.
    line_errors: ClassVar[tuple[type[Exception], ...]]
    #: A sender can also be a receiver (false for Redis, where a subscribed
    #: connection cannot publish: the swarm then makes the senders dedicated
    #: connections and registers them with :meth:`sender_registration`).
    senders_receive: ClassVar[bool] = True

    @abc.abstractmethod
    def decoder(self) -> Decoder:
        """A fresh decoder for one connection."""

    @abc.abstractmethod
    def registration(self, name: str) -> Registration:
        """A fresh registration for a client called ``name``."""

    def sender_registration(self, name: str) -> Registration:
        """The registration of a dedicated sender (one that does not receive)."""
        return self.registration(name)

    @abc.abstractmethod
    def encode_chat(self, text: str) -> bytes:
        """One chat message, framed for sending."""

    def encode_message(self, sender: str, text: str) -> bytes:
        """One chat message from ``sender``, framed for sending (a broker has
        no names: its adapter puts the sender's name in the payload)."""
        return self.encode_chat(text)

    @abc.abstractmethod
    def check_text(self, text: str) -> str | None:
        """Why ``text`` cannot be sent as one message, or None if it can."""

    @abc.abstractmethod
    def split_block(self, block: bytes) -> list[bytes]:
        """The lines of a :meth:`Decoder.feed_block` block, as
        :meth:`Decoder.feed` would have given them."""

    def translate_block(self, block: bytes) -> bytes | None:
        """A whole block of received lines (:meth:`Decoder.feed_block`) as
        the chat lines the recorder reads, when that can be done in one step;
        None sends the block's lines through :meth:`incoming` one by one."""
        return None

    def incoming(self, lines: list[bytes]) -> Incoming:
        """Received traffic lines, classified (see :class:`Incoming`)."""
        return Incoming(lines)

    def control(self, text: str) -> str | None:
        """A received line the recorder did not take (not a chat message):
        the reason if it says the server is closing the connection."""
        return None

    def bind_senders(self, name_of: Callable[[str], str | None]) -> None:
        """For protocols without names on the wire (the shootout): how to
        tell a received message's chat name, the name of the sender its
        probe names (``None``: not a probe).  The swarm worker calls it once;
        other adapters ignore it."""
        return None

    def describe(self) -> ProtocolInfo:
        """What a result document records about the protocol."""
        return {"protocol": self.name}
