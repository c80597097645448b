"""Protocol adapters: the only place in the harness that knows a wire protocol.

A worker (:mod:`bench.swarm.worker`) moves bytes; an :class:`Adapter` says what
they mean.  Per connection it gives

* a **decoder** (received bytes -> lines),
* a **registration** state machine (:class:`Registration`): the bytes to send
  once TCP is up, and for each line received before the connection is ready,
  a :class:`Step` -- bytes to answer with, "done" (registered and in the
  room), or an error that ends the attempt;

and for traffic

* :meth:`Adapter.encode_chat` -- a chat message framed for sending, and
  :meth:`Adapter.check_text`, whether a message fits the protocol's limits;
* :meth:`Adapter.incoming` -- received lines classified: deliveries in the
  form the :class:`bench.swarm.worker.DeliveryRecorder` reads (our chat protocol's
  ``NAME: TEXT`` lines, built with :func:`server.protocol.encode_message`),
  bytes that must be sent back at once (``PONG``), and whether the server said
  it is closing the connection.  An adapter whose deliveries already are chat
  lines (:attr:`Adapter.translates` false) is skipped here: the recorder gets
  the received lines as they are, and :meth:`Adapter.control` looks at the
  lines it did not take.

Two protocols:

``chat``  this project's line protocol, parsed only through
          :mod:`server.protocol`: wait for the name prompt, send the name,
          wait for the welcome; chat lines are ``/say``-safe lines.
``irc``   an IRC subset (:mod:`bench.wire.irc`): ``NICK``/``USER``, wait for
          ``001``, ``JOIN`` one channel and wait for its end of ``NAMES``
          (``366``); messages are ``PRIVMSG #channel :text``; ``PING`` is
          answered with ``PONG`` at any time; CR LF framing; lines the harness
          sends are at most 512 bytes, and a message must leave room for the
          prefix a server adds when it relays it.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from bench.wire import irc
from server import protocol

#: The protocols ``--protocol`` accepts.
PROTOCOLS = ("chat", "irc")
#: The channel every IRC client of a run joins.
IRC_CHANNEL = "#chatbench"

#: Room an IRC server's relay prefix ``:nick!user@host `` may take when it
#: forwards a ``PRIVMSG``: nick up to 31 (NICKLEN), ``~`` + user up to 11,
#: host up to 63, punctuation 4.
IRC_RELAY_PREFIX_BYTES = 31 + 11 + 63 + 4


class Decoder(Protocol):
    def feed(self, data: bytes) -> list[bytes]: ...


@dataclass(frozen=True, slots=True)
class Step:
    """What one received registration line calls for."""

    send: bytes = b""  #: to send now
    done: bool = False  #: registered: later lines are traffic
    error: str | None = None  #: the attempt failed (reason, short)


class Registration(Protocol):
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
    name: ClassVar[str]
    #: Received lines must go through :meth:`incoming` before the recorder.
    translates: ClassVar[bool]
    #: The server expects answers during traffic (PING): connections that do
    #: not measure must still be read and parsed.
    replies_needed: ClassVar[bool]
    #: Exceptions the decoder raises for a line past its limit.
    line_errors: ClassVar[tuple[type[Exception], ...]]

    @abc.abstractmethod
    def decoder(self) -> Decoder: ...

    @abc.abstractmethod
    def registration(self, name: str) -> Registration: ...

    @abc.abstractmethod
    def encode_chat(self, text: str) -> bytes:
        """One chat message, framed for sending."""

    @abc.abstractmethod
    def check_text(self, text: str) -> str | None:
        """Why ``text`` cannot be sent as one message, or None if it can."""

    def incoming(self, lines: list[bytes]) -> Incoming:
        return Incoming(lines)

    def control(self, text: str) -> str | None:
        """A received line the recorder did not take (not a chat message):
        the reason if it says the server is closing the connection."""
        return None

    def describe(self) -> dict[str, Any]:
        return {"protocol": self.name}


# ---------------------------------------------------------------------------
# our chat protocol
# ---------------------------------------------------------------------------


class ChatRegistration:
    """Wait for the name prompt, send the name, wait for the welcome."""

    __slots__ = ("name", "sent_name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent_name = False

    def connected(self) -> bytes:
        return b""

    def line(self, line: bytes) -> Step:
        try:
            event = protocol.parse_server_line(protocol.decode_text(line))
        except protocol.ProtocolError:
            return Step()
        if isinstance(event, protocol.Prompt):
            if self.sent_name:  # a second prompt: the name was refused (the error line said why)
                return Step(error="name refused")
            self.sent_name = True
            return Step(send=protocol.encode_line(self.name))
        if self.sent_name and isinstance(event, protocol.Welcome):
            return Step(done=True)
        if self.sent_name and isinstance(event, protocol.Error):
            return Step(error=f"refused: {event.message[:60]}")
        if isinstance(event, protocol.Disconnected):
            return Step(error=f"disconnected: {event.reason[:60]}")
        return Step()


class ChatAdapter(Adapter):
    name = "chat"
    translates = False
    replies_needed = False
    line_errors = (protocol.LineTooLong,)

    def __init__(self, receive_limit: int = 4 << 20) -> None:
        self.receive_limit = receive_limit

    def decoder(self) -> Decoder:
        return protocol.LineDecoder(self.receive_limit)

    def registration(self, name: str) -> Registration:
        return ChatRegistration(name)

    def encode_chat(self, text: str) -> bytes:
        return protocol.encode_say(text)

    def check_text(self, text: str) -> str | None:
        size = len(protocol.encode_say(text)) - len(protocol.NEWLINE)
        if size > protocol.DEFAULT_MAX_LINE_BYTES:
            return (
                f"a {size}-byte chat line is longer than the server's {protocol.DEFAULT_MAX_LINE_BYTES}-byte line limit"
            )
        return None

    def control(self, text: str) -> str | None:
        try:
            event = protocol.parse_server_line(text)
        except protocol.ProtocolError:
            return None
        if isinstance(event, protocol.Disconnected):
            return f"disconnected: {event.reason[:60]}"
        return None


# ---------------------------------------------------------------------------
# IRC
# ---------------------------------------------------------------------------


class IrcRegistration:
    """``NICK``/``USER``; on ``001`` ``JOIN`` the channel; done on its ``366``."""

    __slots__ = ("channel", "joining", "nick")

    def __init__(self, nick: str, channel: str = IRC_CHANNEL) -> None:
        self.nick = nick
        self.channel = channel
        self.joining = False

    def connected(self) -> bytes:
        return irc.registration(self.nick)

    def line(self, line: bytes) -> Step:
        try:
            msg = irc.parse(line)
        except irc.IrcError:
            return Step()
        cmd = msg.command
        if cmd == "PING":
            return Step(send=irc.pong(msg))
        if cmd == "ERROR":
            return Step(error=f"disconnected: {msg.param(-1)[:60]}")
        if cmd in irc.CONNECTION_REFUSED:
            return Step(error=f"refused: {cmd} {msg.param(-1)[:60]}")
        if not self.joining:
            if cmd == irc.WELCOME:
                self.joining = True
                return Step(send=irc.encode("JOIN", self.channel))
            if cmd in irc.NICK_REFUSED:
                return Step(error=f"nick refused: {cmd} {msg.param(-1)[:60]}")
        else:
            if cmd == irc.END_OF_NAMES and irc.lower(msg.param(1)) == irc.lower(self.channel):
                return Step(done=True)
            if cmd in irc.JOIN_REFUSED:
                return Step(error=f"join refused: {cmd} {msg.param(-1)[:60]}")
        return Step()


@dataclass(frozen=True, slots=True)
class Delivery:
    sender: str
    text: str


@dataclass(frozen=True, slots=True)
class Reply:
    data: bytes


@dataclass(frozen=True, slots=True)
class Ended:
    reason: str


IrcEvent = Delivery | Reply | Ended | None


def _chat_line(sender: str, text: str) -> bytes:
    """A delivery as the line our server would have sent (what the recorder reads)."""
    return protocol.encode_message(sender, text)[: -len(protocol.NEWLINE)]


class IrcAdapter(Adapter):
    name = "irc"
    translates = True
    replies_needed = True
    line_errors = (irc.LineTooLong,)

    def __init__(self, channel: str = IRC_CHANNEL) -> None:
        self.channel = channel
        self._channel_lower = irc.lower(channel)
        self._channel_key = self._channel_lower.encode("utf-8")
        self._head = f"PRIVMSG {channel} :".encode()
        # One relayed channel message, a whole line: the nick, then the text.
        # Only the channel spelled as we joined it, lower-case (others: incoming()).
        self._privmsg_block = re.compile(
            rb"^:([^ !\r\n]+)(?:![^ \r\n]*)? PRIVMSG " + re.escape(self._channel_key) + rb" :([^\r\n]*)\r?\n",
            re.MULTILINE,
        )
        # Longest text whose relayed line (":prefix PRIVMSG #chan :text\r\n") fits 512 bytes.
        self.max_text_bytes = irc.MAX_LINE_BYTES - len(irc.CRLF) - len(self._head) - IRC_RELAY_PREFIX_BYTES

    def decoder(self) -> Decoder:
        return irc.LineSplitter()

    def translate_block(self, block: bytes) -> bytes | None:
        """The fast path of :meth:`incoming` for a whole block of received
        lines (:meth:`irc.LineSplitter.feed_block`): when every line is a
        plain ``:nick[!user@host] PRIVMSG <our channel> :text`` in ASCII, the
        chat lines :meth:`incoming` would give, as one block (one regex
        scan); otherwise None, and the lines take :meth:`incoming`."""
        if not block.isascii():  # invalid UTF-8 would be replaced, one line at a time
            return None
        found = self._privmsg_block.findall(block)
        if len(found) != block.count(b"\n"):
            return None
        # (re.sub with a template expands each match in Python: 3x slower)
        return b"".join([nick + b": " + text + b"\n" for nick, text in found])

    def registration(self, name: str) -> Registration:
        return IrcRegistration(name, self.channel)

    def encode_chat(self, text: str) -> bytes:
        line = self._head + text.encode("utf-8") + irc.CRLF
        if len(line) > irc.MAX_LINE_BYTES:
            raise irc.LineTooLong(len(line), irc.MAX_LINE_BYTES)
        return line

    def check_text(self, text: str) -> str | None:
        raw = text.encode("utf-8")
        if any(c in raw for c in (b"\r", b"\n", b"\0")):
            return "IRC messages cannot hold CR, LF or NUL"
        if len(raw) > self.max_text_bytes:
            return (
                f"a {len(raw)}-byte message does not fit IRC's 512-byte line once a server relays it "
                f"(at most {self.max_text_bytes} bytes of text)"
            )
        return None

    def classify(self, line: bytes) -> IrcEvent:
        """One traffic line: a channel message, a PING to answer, the server
        closing the connection, or None (anything else: ignored)."""
        fast = irc.privmsg(line)
        if fast is not None:
            nick, target, text = fast
            if irc.lower(target.decode("utf-8", "replace")) != self._channel_lower:
                return None
            return Delivery(nick.decode("utf-8", "replace"), text.decode("utf-8", "replace"))
        try:
            msg = irc.parse(line)
        except irc.IrcError:
            return None
        cmd = msg.command
        if cmd == "PING":
            return Reply(irc.pong(msg))
        if cmd == "ERROR":
            return Ended(f"disconnected: {msg.param(-1)[:60]}")
        if cmd == "PRIVMSG" and msg.prefix and len(msg.params) >= 2 and irc.lower(msg.params[0]) == self._channel_lower:
            return Delivery(msg.nick or "", msg.params[-1])
        return None

    def incoming(self, lines: list[bytes]) -> Incoming:
        out: list[bytes] = []
        reply = b""
        ended: str | None = None
        privmsg = irc.privmsg
        key = self._channel_key
        for line in lines:
            fast = privmsg(line)
            if fast is not None and fast[1].lower() == key:  # the hot path: a message to our channel
                out.append(_chat_line(fast[0].decode("utf-8", "replace"), fast[2].decode("utf-8", "replace")))
                continue
            event = self.classify(line)
            if event is None:
                continue
            if isinstance(event, Delivery):
                out.append(_chat_line(event.sender, event.text))
            elif isinstance(event, Reply):
                reply += event.data
            else:
                ended = event.reason
        return Incoming(out, reply, ended)

    def describe(self) -> dict[str, Any]:
        return {"protocol": self.name, "channel": self.channel, "max_text_bytes": self.max_text_bytes}


def get(name: str) -> Adapter:
    """The adapter for a ``--protocol`` value."""
    if name == "chat":
        return ChatAdapter()
    if name == "irc":
        return IrcAdapter()
    raise ValueError(f"unknown protocol {name!r} (choose from {', '.join(PROTOCOLS)})")
