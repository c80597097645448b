"""The subset of IRC (RFC 1459 / RFC 2812) the harness speaks, sans-IO.

Nothing here touches a socket: :class:`LineSplitter` turns received bytes
into lines, :func:`parse` turns a line into a :class:`Message`,
:func:`encode` builds a line to send, and :func:`privmsg` is the fast path
for the one line the receive loop sees most (a channel message).
:mod:`bench.wire.irc_adapter` builds the harness's IRC client out of these.

Framing: lines end in CR LF (a bare LF is accepted too, as most servers
do).  A line the harness *sends* is at most :data:`MAX_LINE_BYTES` (512)
bytes including the CR LF -- the RFC limit, past which servers truncate or
refuse.  Received lines may be longer than 512 bytes only through IRCv3
message tags (up to 8191 bytes of them), so the splitter's default limit is
:data:`MAX_RECEIVED_LINE_BYTES`.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Longest line (CR LF included) a client may send, per RFC 1459 / 2812.
MAX_LINE_BYTES = 512
#: Longest line accepted from a server: 512 plus IRCv3 message tags (8191).
MAX_RECEIVED_LINE_BYTES = 512 + 8191
CRLF = b"\r\n"

_FORBIDDEN = (b"\r", b"\n", b"\0")


class IrcError(ValueError):
    """A line that cannot be parsed or built."""


class LineTooLong(IrcError):
    """A line past the limit (512 bytes to send, the splitter's limit to receive)."""

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"IRC line of {length} bytes is past the {limit}-byte limit")
        self.length = length
        self.limit = limit


class LineSplitter:
    """Received bytes -> complete lines (without CR LF), holding at most one
    bounded partial line between calls.  Raises :class:`LineTooLong` when a
    line grows past ``max_line_bytes``."""

    __slots__ = ("_partial", "max_line_bytes")

    def __init__(self, max_line_bytes: int = MAX_RECEIVED_LINE_BYTES) -> None:
        if max_line_bytes < 3:
            raise ValueError("max_line_bytes must be at least 3")
        self.max_line_bytes = max_line_bytes
        self._partial = b""

    @property
    def buffered(self) -> int:
        return len(self._partial)

    def feed(self, data: bytes) -> list[bytes]:
        if self._partial:
            data = self._partial + data
        pieces = data.split(b"\n")
        tail = pieces.pop()
        limit = self.max_line_bytes
        lines: list[bytes] = []
        for line in pieces:
            if line.endswith(b"\r"):
                line = line[:-1]
            if len(line) + 2 > limit:
                self._partial = b""
                raise LineTooLong(len(line) + 2, limit)
            if line:  # empty lines are allowed and ignored
                lines.append(line)
        if len(tail) + 1 > limit:  # even its CR LF would not fit
            self._partial = b""
            raise LineTooLong(len(tail), limit)
        self._partial = tail
        return lines

    def feed_block(self, data: bytes) -> bytes:
        """Like :meth:`feed`, but the complete lines come back as one block,
        each with its line ending as received: ``split_block(feed_block(x))
        == feed(x)``, limits included."""
        if self._partial:
            data = self._partial + data
        cut = data.rfind(b"\n") + 1
        block, tail = data[:cut], data[cut:]
        limit = self.max_line_bytes
        # Only a run of limit - 1 bytes without LF can be a line that is too
        # long (C-speed scan); the exact check runs only then.
        if len(block) + 1 > limit and max(map(len, block.split(b"\n"))) + 1 >= limit:
            for line in split_block(block):
                if len(line) + 2 > limit:
                    self._partial = b""
                    raise LineTooLong(len(line) + 2, limit)
        if len(tail) + 1 > limit:
            self._partial = b""
            raise LineTooLong(len(tail), limit)
        self._partial = tail
        return block


def split_block(block: bytes) -> list[bytes]:
    """The lines of a :meth:`LineSplitter.feed_block` block, as
    :meth:`LineSplitter.feed` returns them (no CR LF, empty lines dropped)."""
    lines = []
    for line in block.split(b"\n")[:-1]:
        if line.endswith(b"\r"):
            line = line[:-1]
        if line:
            lines.append(line)
    return lines


@dataclass(frozen=True, slots=True)
class Message:
    """One parsed line.  ``command`` is upper-case (numerics stay digits);
    ``params`` holds the middle parameters and then the trailing one."""

    prefix: str | None
    command: str
    params: tuple[str, ...]

    @property
    def nick(self) -> str | None:
        """The sender's nick, from a ``nick!user@host`` prefix."""
        return nick_of(self.prefix) if self.prefix is not None else None

    def param(self, i: int, default: str = "") -> str:
        return self.params[i] if -len(self.params) <= i < len(self.params) else default


def nick_of(prefix: str) -> str:
    return prefix.split("!", 1)[0].split("@", 1)[0]


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def parse(line: bytes) -> Message:
    """Parse one line (without CR LF).  IRCv3 tags (``@...``) are skipped."""
    rest = line.rstrip(b"\r\n")
    if rest.startswith(b"@"):
        _, _, rest = rest.partition(b" ")
        rest = rest.lstrip(b" ")
    prefix: str | None = None
    if rest.startswith(b":"):
        raw_prefix, _, rest = rest.partition(b" ")
        prefix = _text(raw_prefix[1:])
        rest = rest.lstrip(b" ")
    head, sep, trailing = rest.partition(b" :")
    if not sep and rest.startswith(b":"):  # no command, only a trailing part
        head, trailing, sep = b"", rest[1:], b" :"
    words = [w for w in head.split(b" ") if w]
    if not words:
        raise IrcError(f"no command in IRC line {line[:80]!r}")
    command = _text(words[0]).upper()
    params = [_text(w) for w in words[1:]]
    if sep:
        params.append(_text(trailing))
    return Message(prefix, command, tuple(params))


def encode(command: str, *params: str) -> bytes:
    """One line to send, CR LF included.  The last parameter is sent as a
    trailing parameter (``:text``) when it has to be (spaces, a leading colon,
    or empty).  Raises :class:`IrcError` for CR, LF or NUL in a parameter or a
    space in a middle one, and :class:`LineTooLong` past 512 bytes."""
    parts = [command.encode("ascii")]
    for i, param in enumerate(params):
        raw = param.encode("utf-8")
        if any(c in raw for c in _FORBIDDEN):
            raise IrcError(f"CR, LF or NUL in IRC parameter {param[:40]!r}")
        last = i == len(params) - 1
        if last and (not raw or b" " in raw or raw.startswith(b":")):
            raw = b":" + raw
        elif not raw or b" " in raw or raw.startswith(b":"):
            raise IrcError(f"middle IRC parameter {param[:40]!r} is empty, has a space or starts with ':'")
        parts.append(raw)
    line = b" ".join(parts) + CRLF
    if len(line) > MAX_LINE_BYTES:
        raise LineTooLong(len(line), MAX_LINE_BYTES)
    return line


def privmsg(line: bytes) -> tuple[bytes, bytes, bytes] | None:
    """Fast path: ``(nick, target, text)`` for ``:nick!user@host PRIVMSG
    target :text`` (tags not allowed), else None -- then :func:`parse` it."""
    if not line.startswith(b":"):
        return None
    parts = line.split(b" ", 3)
    if len(parts) != 4 or parts[1] != b"PRIVMSG":
        return None
    text = parts[3]
    if text.startswith(b":"):
        text = text[1:]
    elif b" " in text:  # a non-trailing last parameter cannot hold spaces
        return None
    nick = parts[0][1:]
    bang = nick.find(b"!")
    if bang >= 0:
        nick = nick[:bang]
    return nick, parts[2], text


def pong(ping: Message) -> bytes:
    """The answer to a server's ``PING``: the same token back."""
    return encode("PONG", ping.param(-1) or ping.param(0))


def registration(nick: str, realname: str = "chatbench", password: str | None = None) -> bytes:
    """``NICK`` and ``USER``, after ``PASS`` when the server has a password
    (RFC 2812 3.1.1: PASS comes first): what a client sends first."""
    first = encode("PASS", password) if password is not None else b""
    return first + encode("NICK", nick) + encode("USER", nick, "0", "*", realname)


#: Replies that refuse a nick during registration.
NICK_REFUSED = frozenset({"431", "432", "433", "436", "437"})
#: Replies that refuse a JOIN.
JOIN_REFUSED = frozenset({"403", "405", "437", "471", "473", "474", "475", "476", "477"})
#: Replies that refuse the connection itself (bad password, banned).
CONNECTION_REFUSED = frozenset({"464", "465"})
WELCOME = "001"
END_OF_NAMES = "366"


def lower(name: str) -> str:
    """RFC 1459 case mapping: ``{}|^`` are the lower case of ``[]\\~``."""
    return name.lower().translate(_RFC1459)


_RFC1459 = str.maketrans("[]\\~", "{}|^")
