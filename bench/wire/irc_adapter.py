"""IRC as the harness speaks it, built on the sans-IO codec :mod:`bench.wire.irc`.

``NICK``/``USER``, wait for ``001``, ``JOIN`` one channel and wait for its
end of ``NAMES`` (``366``); messages are ``PRIVMSG #channel :text``; ``PING``
is answered with ``PONG`` at any time; CR LF framing; lines the harness
sends are at most 512 bytes, and a message must leave room for the prefix a
server adds when it relays it.  A received channel message is a delivery
pair ``(nick, text)``, taken straight from the ``PRIVMSG`` (one regex pass
over a whole block of them), which the recorder reads as it is.

Rooms: a plan's room ``r12`` is channel ``#r12`` (the target's one room is
:data:`IRC_CHANNEL`); a client sends ``JOIN`` for all of its channels (as few
``JOIN`` lines as fit 512 bytes) and is registered once each one's ``366``
came.  In a workload of several rooms (``IrcAdapter.rooms``) a delivery's
name is the channel it arrived on, a space and the nick (``#r12 alice``):
the room comes from the ``PRIVMSG`` itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bench.wire import irc
from bench.wire.base import Adapter, Decoder, Incoming, Pair, ProtocolInfo, Registration, Step
from bench.wire.credentials import LOGIN_PASSWORD, Credentials

#: The channel every IRC client of a run joins.
IRC_CHANNEL = "#chatbench"

#: Another client's JOIN or QUIT, a whole line: the nick, the command.
_NOTICE = re.compile(rb"^:([^ !\r\n]+)(?:![^ \r\n]*)? (JOIN|QUIT)(?: [^\r\n]*)?\r?\n", re.MULTILINE)

#: Room an IRC server's relay prefix ``:nick!user@host `` may take when it
#: forwards a ``PRIVMSG``: nick up to 31 (NICKLEN), ``~`` + user up to 11,
#: host up to 63, punctuation 4.
IRC_RELAY_PREFIX_BYTES = 31 + 11 + 63 + 4


def channel_of(room: str, default: str = IRC_CHANNEL) -> str:
    """A plan's room as an IRC channel."""
    return f"#{room}" if room else default


def join_lines(channels: list[str]) -> bytes:
    """``JOIN`` lines for ``channels``, as many per line as fit 512 bytes."""
    out: list[bytes] = []
    batch: list[str] = []
    for channel in channels:
        joined = len("JOIN ") + len(",".join([*batch, channel]).encode()) + len(irc.CRLF)
        if batch and joined > irc.MAX_LINE_BYTES:
            out.append(irc.encode("JOIN", ",".join(batch)))
            batch = []
        batch.append(channel)
    if batch:
        out.append(irc.encode("JOIN", ",".join(batch)))
    return b"".join(out)


class IrcRegistration:
    """(``PASS``), ``NICK``/``USER``; on ``001`` ``JOIN`` the channels; done on their ``366``."""

    __slots__ = ("channels", "joining", "nick", "password", "waiting")

    def __init__(
        self, nick: str, channels: str | tuple[str, ...] = (IRC_CHANNEL,), *, password: str | None = None
    ) -> None:
        self.nick = nick
        self.channels = (channels,) if isinstance(channels, str) else channels
        self.password = password
        self.joining = False
        #: channels (lower case) whose end of NAMES has not come yet
        self.waiting = {irc.lower(c) for c in self.channels}

    def connected(self) -> bytes:
        return irc.registration(self.nick, password=self.password)

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
                return Step(send=join_lines(list(self.channels)), done=not self.waiting)
            if cmd in irc.NICK_REFUSED:
                return Step(error=f"nick refused: {cmd} {msg.param(-1)[:60]}")
        else:
            if cmd == irc.END_OF_NAMES and irc.lower(msg.param(1)) in self.waiting:
                self.waiting.discard(irc.lower(msg.param(1)))
                return Step(done=not self.waiting)
            if cmd in irc.JOIN_REFUSED:
                return Step(error=f"join refused: {cmd} {msg.param(-1)[:60]}")
        return Step()


@dataclass(frozen=True, slots=True)
class Delivery:
    """A channel message: who said what."""

    sender: str
    text: str


@dataclass(frozen=True, slots=True)
class Reply:
    """Bytes to send back at once (a ``PONG``)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Ended:
    """The server is closing the connection, and why."""

    reason: str


IrcEvent = Delivery | Reply | Ended | None


class IrcAdapter(Adapter):
    """IRC: channel ``PRIVMSG`` lines are deliveries, ``PING`` gets ``PONG``."""

    name = "irc"
    replies_needed = True
    line_errors = (irc.LineTooLong,)
    login = LOGIN_PASSWORD

    def __init__(self, channel: str = IRC_CHANNEL) -> None:
        self.channel = channel
        self._channel_lower = irc.lower(channel)
        self._channel_key = self._channel_lower.encode("utf-8")
        self._head = f"PRIVMSG {channel} :".encode()
        # One relayed channel message, a whole line: the nick, then the text.
        # Only the channel spelled as we joined it, lower-case (others: line by line).
        self._privmsg_block = re.compile(
            rb"^:([^ !\r\n]+)(?:![^ \r\n]*)? PRIVMSG " + re.escape(self._channel_key) + rb" :([^\r\n]*)\r?\n",
            re.MULTILINE,
        )
        # Longest text whose relayed line (":prefix PRIVMSG #chan :text\r\n") fits 512 bytes.
        self.max_text_bytes = self._max_text(channel)
        # A workload's rooms: (nick, channel, text) of every relayed channel message.
        self._room_privmsg_block = re.compile(
            rb"^:([^ !\r\n]+)(?:![^ \r\n]*)? PRIVMSG ([#&][^ \r\n]*) :([^\r\n]*)\r?\n", re.MULTILINE
        )
        self._heads: dict[str, bytes] = {"": self._head}

    def _max_text(self, channel: str) -> int:
        head = len(f"PRIVMSG {channel} :".encode())
        return irc.MAX_LINE_BYTES - len(irc.CRLF) - head - IRC_RELAY_PREFIX_BYTES

    def decoder(self) -> Decoder:
        return irc.LineSplitter()

    def deliveries(self, block: bytes) -> Incoming:
        """The channel messages of a block of received lines
        (:meth:`irc.LineSplitter.feed_block`) as ``(nick, text)`` pairs; a
        ``PING`` answered, an ``ERROR`` the end of the connection.  When
        every line is a plain ``:nick[!user@host] PRIVMSG <our channel>
        :text`` in ASCII, one regex scan finds them all; otherwise line by
        line (:meth:`classify`)."""
        if block.isascii():  # invalid UTF-8 would be replaced, one line at a time
            if self.rooms:
                rooms = self._room_privmsg_block.findall(block)
                if len(rooms) == block.count(b"\n"):
                    return Incoming(pairs=[(channel.lower() + b" " + nick, text) for nick, channel, text in rooms])
            else:
                found: list[Pair] = self._privmsg_block.findall(block)
                if len(found) == block.count(b"\n"):
                    return Incoming(pairs=found)
        return self.classify_lines(irc.split_block(block))

    def registration(
        self, name: str, credentials: Credentials | None = None, rooms: tuple[str, ...] = ("",)
    ) -> Registration:
        password = credentials.password if credentials is not None else None
        return IrcRegistration(name, tuple(channel_of(r, self.channel) for r in rooms), password=password)

    notices = ":nick!user@host JOIN #channel / :nick!user@host QUIT :REASON, to the channel's members"

    def encode_quit(self) -> bytes:
        return irc.encode("QUIT", "bye")

    def split_notices(self, block: bytes) -> tuple[bytes, list[bytes], list[bytes]]:
        if b" JOIN " not in block and b" QUIT" not in block:
            return block, [], []
        found = _NOTICE.findall(block)
        if not found:
            return block, [], []
        joins = [nick for nick, command in found if command == b"JOIN"]
        quits = [nick for nick, command in found if command == b"QUIT"]
        return _NOTICE.sub(b"", block), joins, quits

    def strip_notices(self, block: bytes) -> bytes:
        if b" JOIN " not in block and b" QUIT" not in block:
            return block
        return _NOTICE.sub(b"", block)

    def encode_chat(self, text: str) -> bytes:
        return self.encode_message("", text)

    def encode_message(self, sender: str, text: str, room: str = "") -> bytes:
        head = self._heads.get(room)
        if head is None:
            head = self._heads[room] = f"PRIVMSG {channel_of(room)} :".encode()
        line = head + text.encode("utf-8") + irc.CRLF
        if len(line) > irc.MAX_LINE_BYTES:
            raise irc.LineTooLong(len(line), irc.MAX_LINE_BYTES)
        return line

    def check_text(self, text: str, room: str = "") -> str | None:
        raw = text.encode("utf-8")
        if any(c in raw for c in (b"\r", b"\n", b"\0")):
            return "IRC messages cannot hold CR, LF or NUL"
        most = self._max_text(channel_of(room, self.channel))
        if len(raw) > most:
            return (
                f"a {len(raw)}-byte message does not fit IRC's 512-byte line once a server relays it "
                f"(at most {most} bytes of text)"
            )
        return None

    def classify(self, line: bytes) -> IrcEvent:
        """One traffic line: a channel message, a PING to answer, the server
        closing the connection, or None (anything else: ignored)."""
        fast = irc.privmsg(line)
        if fast is not None:
            nick, target, text = fast
            if self.rooms:
                name = self._room_name(target, nick)
                return Delivery(name.decode("utf-8", "replace"), text.decode("utf-8", "replace"))
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
        if cmd == "PRIVMSG" and msg.prefix and len(msg.params) >= 2:
            if self.rooms:
                name = self._room_name(msg.params[0].encode("utf-8"), (msg.nick or "").encode("utf-8"))
                return Delivery(name.decode("utf-8", "replace"), msg.params[-1])
            if irc.lower(msg.params[0]) == self._channel_lower:
                return Delivery(msg.nick or "", msg.params[-1])
        return None

    @staticmethod
    def _room_name(channel: bytes, nick: bytes) -> bytes:
        """The name a delivery in a workload's room arrives under: ``#r12 nick``."""
        return channel.lower() + b" " + nick

    def classify_lines(self, lines: list[bytes]) -> Incoming:
        """:meth:`deliveries` line by line (:meth:`classify`): what the
        one-scan path must agree with."""
        pairs: list[Pair] = []
        reply = b""
        ended: str | None = None
        privmsg = irc.privmsg
        key = self._channel_key
        for line in lines:
            fast = privmsg(line)
            if fast is not None and not self.rooms and fast[1].lower() == key:  # the hot path: our channel
                pairs.append((fast[0], fast[2]))
                continue
            event = self.classify(line)
            if event is None:
                continue
            if isinstance(event, Delivery):
                pairs.append((event.sender.encode("utf-8"), event.text.encode("utf-8")))
            elif isinstance(event, Reply):
                reply += event.data
            else:
                ended = event.reason
        return Incoming(pairs=pairs, reply=reply, ended=ended)

    def describe(self) -> ProtocolInfo:
        return {"protocol": self.name, "channel": self.channel, "max_text_bytes": self.max_text_bytes}
