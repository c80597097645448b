"""The chatbench wire protocol, sans-IO.

This module is the only place that knows how bytes on the wire map to chat
events.  The server, the terminal client, the swarm and the Locust users all
import it; none of them parses the protocol on its own.  It never touches a
socket: callers feed it bytes and get lines and frozen event objects back
(the shape h11 made popular).

Framing: UTF-8 text lines terminated by ``\\n`` (a ``\\r`` before it is
dropped, so telnet and netcat work).  See ``docs/protocol.md``.

Client -> server
    first line          the username (answer to the prompt)
    ``TEXT``            a chat message, relayed to everyone else
    ``/CMD ARGS``       a command (``/who``, ``/msg``, ``/me``, ``/nick``,
                        ``/quit``, ``/help``); ``//TEXT`` sends ``/TEXT``

Server -> client, one kind per line, told apart by the first characters
    ``? PROMPT``        asks for a username
    ``*** NOTICE``      welcome, join, leave, rename, who, help, disconnect
    ``! ERROR``         something the client asked for was refused
    ``* NAME ACTION``   a /me action
    ``[private] NAME: TEXT`` / ``[private to NAME] TEXT``
    ``NAME: TEXT``      a chat message
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# --------------------------------------------------------------------------
# Limits.  Each is a default; the server exposes every one as a CLI option.
# --------------------------------------------------------------------------

#: Longest line a client may send, in bytes, not counting the ``\n``.  4 KiB
#: is far above any line a person types and matches common IRC-derivative
#: limits while keeping a per-connection receive buffer small and bounded:
#: a client can never make the server hold more than this for a partial line.
DEFAULT_MAX_LINE_BYTES = 4096

#: Room a server line needs beyond the client's text: a name (32 chars, up to
#: 4 bytes each in UTF-8), the ``[private to ]`` decoration and separators.
#: Receivers size their decoder as ``max_line_bytes + SERVER_LINE_OVERHEAD``.
SERVER_LINE_OVERHEAD = 4 * 32 + 64

#: Longest username, in characters.  Long enough for real names and handles,
#: short enough that a line prefix stays readable on a terminal.
MAX_NAME_CHARS = 32

NEWLINE = b"\n"


class ProtocolError(Exception):
    """The peer broke the protocol.  The message says how, in plain words."""


class LineTooLong(ProtocolError):
    """A line went past the decoder's byte limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"line too long (limit is {limit} bytes)")
        self.limit = limit


# --------------------------------------------------------------------------
# Framing
# --------------------------------------------------------------------------


class LineDecoder:
    """Turns a byte stream into complete lines, holding at most one bounded
    partial line between calls.

    ``feed(data)`` returns every complete line in ``data`` (without the
    terminator and without a trailing ``\\r``).  A line longer than
    ``max_line_bytes`` raises :class:`LineTooLong` in strict mode.  With
    ``discard_oversized=True`` (what the server uses) the line is dropped
    instead, the decoder skips input up to the next newline, and
    ``oversized`` counts how many lines were dropped, so the caller can
    tell the client.  Either way the buffer never exceeds the limit.
    """

    __slots__ = ("_partial", "_skipping", "discard_oversized", "max_line_bytes", "oversized")

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, *, discard_oversized: bool = False) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be at least 1")
        self.max_line_bytes = max_line_bytes
        self.discard_oversized = discard_oversized
        self.oversized = 0
        self._partial = b""
        self._skipping = False

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete line held right now."""
        return len(self._partial)

    def feed(self, data: bytes) -> list[bytes]:
        if not data:
            return []
        pieces = data.split(NEWLINE)
        tail = pieces.pop()  # bytes after the last newline: an incomplete line
        limit = self.max_line_bytes
        if pieces:
            if self._skipping:
                # The rest of an oversized line ends here; nothing to keep.
                pieces.pop(0)
                self._skipping = False
            elif self._partial:
                pieces[0] = self._partial + pieces[0]
            self._partial = b""
            lines: list[bytes] = []
            for line in pieces:
                if line.endswith(b"\r"):
                    line = line[:-1]
                if len(line) > limit:
                    self._oversized()
                    continue
                lines.append(line)
        else:
            lines = []
        if self._skipping:
            return lines
        partial = self._partial + tail if self._partial else tail
        # A held partial may end in "\r" that belongs to "\r\n": allow one byte.
        if len(partial) > limit + 1:
            self._partial = b""
            self._skipping = True
            self._oversized()
        else:
            self._partial = partial
        return lines

    def feed_block(self, data: bytes) -> bytes:
        """Like :meth:`feed`, but the complete lines come back as one block:
        the bytes up to and including the last newline, with any held partial
        line in front, each line still ending in ``\n`` (and a ``\r`` before
        it kept).  ``split_block(feed_block(data)) == feed(data)`` for every
        input, limits included, so a caller can work on a whole ``recv``
        buffer at once (see :func:`chat_block_layout`) and fall back to the
        line list only when it needs it."""
        if not data:
            return b""
        if self.discard_oversized or self._skipping:
            return b"".join([line + NEWLINE for line in self.feed(data)])
        cut = data.rfind(NEWLINE)
        limit = self.max_line_bytes
        if cut < 0:
            partial = self._partial + data if self._partial else data
            if len(partial) > limit + 1:
                self._partial = b""
                self._skipping = True
                raise LineTooLong(limit)
            self._partial = partial
            return b""
        if cut == len(data) - 1:
            block = self._partial + data if self._partial else data
            tail = b""
        else:
            if not self._partial:
                block = data[: cut + 1]
            elif cut < 8192:
                block = self._partial + data[: cut + 1]
            else:  # one copy of a big buffer: bytes + memoryview concatenates without slicing first
                block = self._partial + memoryview(data)[: cut + 1]
            tail = data[cut + 1 :]
        self._partial = b""
        # Only a block longer than the limit can hold a line over it.
        if len(block) > limit + 1 and _may_hold_a_line_over(block, limit):
            raise LineTooLong(limit)
        if len(tail) > limit + 1:
            self._skipping = True
            raise LineTooLong(limit)
        self._partial = tail
        return block

    def _oversized(self) -> None:
        if not self.discard_oversized:
            raise LineTooLong(self.max_line_bytes)
        self.oversized += 1


def _may_hold_a_line_over(block: bytes, limit: int) -> bool:
    """Whether a line of ``block`` (complete lines, as :meth:`LineDecoder.feed_block`
    returns them) is longer than ``limit`` bytes as :func:`split_block` cuts it.

    A cheap sufficient test first: such a line holds at least ``limit + 1``
    bytes without a newline, so it covers a whole aligned window of
    ``(limit + 2) // 2`` bytes.  When every window has a newline (a few
    ``bytes.find`` calls, no object per line) no line is too long;
    otherwise the exact check."""
    step = (limit + 2) // 2
    find = block.find
    for lo in range(0, len(block) - step + 1, step):
        if find(NEWLINE, lo, lo + step) < 0:
            return max(map(len, split_block(block))) > limit
    return False


def split_block(block: bytes) -> list[bytes]:
    """The lines of a block from :meth:`LineDecoder.feed_block` (complete
    lines, each ending in ``\n``), as :meth:`LineDecoder.feed` returns them:
    without the terminator and without a ``\r`` before it."""
    lines = block.split(NEWLINE)
    lines.pop()  # after the last newline: nothing
    if 13 in block:  # b"\r" (an int is found with memchr, several times faster)
        lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    return lines


def encode_line(text: str) -> bytes:
    """One protocol line, ready to send: UTF-8 and the terminator."""
    return text.encode("utf-8") + NEWLINE


def decode_text(line: bytes) -> str:
    """Line bytes to text.  Invalid UTF-8 is replaced, never an exception:
    one bad byte must not end a conversation."""
    return line.decode("utf-8", errors="replace")


# --------------------------------------------------------------------------
# Names and text
# --------------------------------------------------------------------------

#: First characters reserved for server lines, so no name can impersonate a
#: notice (``*** ``), an action (``* ``), an error (``! ``), a prompt
#: (``? ``), a private line (``[``) or a command (``/``).
RESERVED_FIRST = frozenset("*!?[/#@")
#: Characters that would make ``NAME: TEXT`` or name lists ambiguous.
_FORBIDDEN_IN_NAME = frozenset(":,")


def validate_name(raw: str) -> str:
    """Return the stripped name or raise :class:`ProtocolError` saying why
    it is not acceptable.  Uniqueness is the hub's business: see
    :func:`name_key`."""
    name = raw.strip()
    if not name:
        raise ProtocolError("name is empty")
    if len(name) > MAX_NAME_CHARS:
        raise ProtocolError(f"name is longer than {MAX_NAME_CHARS} characters")
    for ch in name:
        if ch.isspace():
            raise ProtocolError("name must not contain spaces")
        if not ch.isprintable():
            raise ProtocolError("name must not contain control characters")
        if ch in _FORBIDDEN_IN_NAME:
            raise ProtocolError(f"name must not contain {ch!r}")
    if name[0] in RESERVED_FIRST:
        raise ProtocolError(f"name must not start with {name[0]!r}")
    return name


def name_key(name: str) -> str:
    """The key under which names are unique: case-insensitive and with
    Unicode compatibility forms folded, so ``Alice`` and ``ALICE`` clash."""
    return unicodedata.normalize("NFKC", name).casefold()


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


def sanitize_text(text: str) -> str:
    """Make client text safe to show on other people's terminals: tabs become
    spaces and every other control character (ESC and so ANSI sequences, NUL,
    bell, C1 controls, line separators) becomes U+FFFD."""
    if text.isprintable():
        return text
    return _CONTROL.sub("\ufffd", text.replace("\t", " "))


# --------------------------------------------------------------------------
# Client -> server
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Say:
    text: str


@dataclass(frozen=True, slots=True)
class Who:
    pass


@dataclass(frozen=True, slots=True)
class PrivateMessage:
    to: str
    text: str


@dataclass(frozen=True, slots=True)
class Me:
    action: str


@dataclass(frozen=True, slots=True)
class Nick:
    new_name: str


@dataclass(frozen=True, slots=True)
class Quit:
    reason: str


@dataclass(frozen=True, slots=True)
class Help:
    pass


ClientCommand = Say | Who | PrivateMessage | Me | Nick | Quit | Help

#: Usage strings, also what /help prints.
COMMAND_USAGE: dict[str, str] = {
    "who": "/who",
    "msg": "/msg NAME TEXT",
    "me": "/me ACTION",
    "nick": "/nick NEWNAME",
    "quit": "/quit [REASON]",
    "help": "/help",
}


def parse_client_line(text: str) -> ClientCommand | None:
    """Parse one line a registered client sent.  Returns ``None`` for a blank
    line (ignored) and raises :class:`ProtocolError` for an unknown command
    or a command with missing arguments."""
    if not text.startswith("/"):
        return Say(text) if text.strip() else None
    if text.startswith("//"):
        return Say(text[1:])
    word, _, rest = text[1:].partition(" ")
    command = word.lower()
    rest = rest.strip()
    if command == "who":
        return Who()
    if command == "help":
        return Help()
    if command == "quit":
        return Quit(rest)
    if command == "me":
        if not rest:
            raise ProtocolError(f"usage: {COMMAND_USAGE['me']}")
        return Me(rest)
    if command == "nick":
        if not rest:
            raise ProtocolError(f"usage: {COMMAND_USAGE['nick']}")
        return Nick(rest)
    if command == "msg":
        to, _, body = rest.partition(" ")
        if not to or not body.strip():
            raise ProtocolError(f"usage: {COMMAND_USAGE['msg']}")
        return PrivateMessage(to, body.strip())
    raise ProtocolError(f"unknown command /{word}; try /help")


def encode_say(text: str) -> bytes:
    """What a client sends to say ``text`` (escaping a leading slash)."""
    return encode_line("/" + text if text.startswith("/") else text)


# --------------------------------------------------------------------------
# Server -> client: encoders
# --------------------------------------------------------------------------

PROMPT_PREFIX = "? "
NOTICE_PREFIX = "*** "
ERROR_PREFIX = "! "
ACTION_PREFIX = "* "
PRIVATE_PREFIX = "[private] "
PRIVATE_TO_PREFIX = "[private to "
MESSAGE_SEPARATOR = ": "

NAME_PROMPT = "Enter your username:"


def encode_prompt() -> bytes:
    return encode_line(PROMPT_PREFIX + NAME_PROMPT)


#: Bytes of names listed in one welcome or /who line.  With thousands of
#: users the full list would not fit a line any client accepts, so it is cut
#: and ends with "(+N more)"; the count in parentheses is always exact.
NAME_LIST_BYTES = 2048


def _name_list(online: list[str], total: int | None = None) -> str:
    """``Online (N): a, b (+K more)``; ``total`` when ``online`` is already
    only part of the names."""
    count = len(online) if total is None else max(total, len(online))
    shown: list[str] = []
    used = 0
    for name in online:
        used += len(name.encode("utf-8")) + 2
        if used > NAME_LIST_BYTES:
            break
        shown.append(name)
    listing = ", ".join(shown)
    if len(shown) < count:
        listing += f" (+{count - len(shown)} more)"
    return f"Online ({count}): {listing}"


def encode_welcome(name: str, online: list[str], total: int | None = None) -> bytes:
    return encode_line(f"{NOTICE_PREFIX}Welcome, {name}! {_name_list(online, total)}")


def encode_joined(name: str) -> bytes:
    return encode_line(f"{NOTICE_PREFIX}{name} joined the chat")


def encode_left(name: str, reason: str) -> bytes:
    return encode_line(f"{NOTICE_PREFIX}{name} left the chat ({reason})")


def encode_renamed(old: str, new: str) -> bytes:
    return encode_line(f"{NOTICE_PREFIX}{old} is now known as {new}")


def encode_who(online: list[str]) -> bytes:
    return encode_line(f"{NOTICE_PREFIX}{_name_list(online)}")


def encode_help() -> bytes:
    return encode_line(f"{NOTICE_PREFIX}Commands: {', '.join(COMMAND_USAGE.values())}; //TEXT sends /TEXT")


def encode_disconnect(reason: str) -> bytes:
    """The last line a client gets before the server closes the connection."""
    return encode_line(f"{NOTICE_PREFIX}Disconnected: {reason}")


def encode_error(message: str) -> bytes:
    return encode_line(ERROR_PREFIX + message)


def encode_message(sender: str, text: str) -> bytes:
    return encode_line(sender + MESSAGE_SEPARATOR + text)


def encode_action(sender: str, action: str) -> bytes:
    return encode_line(f"{ACTION_PREFIX}{sender} {action}")


def encode_private(sender: str, text: str) -> bytes:
    return encode_line(f"{PRIVATE_PREFIX}{sender}{MESSAGE_SEPARATOR}{text}")


def encode_private_echo(recipient: str, text: str) -> bytes:
    return encode_line(f"{PRIVATE_TO_PREFIX}{recipient}] {text}")


# --------------------------------------------------------------------------
# Server -> client: events
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Prompt:
    text: str


@dataclass(frozen=True, slots=True)
class Welcome:
    name: str
    online: tuple[str, ...]
    #: How many are online; more than ``len(online)`` when the list was cut.
    count: int = -1

    def __post_init__(self) -> None:
        if self.count < 0:
            object.__setattr__(self, "count", len(self.online))


@dataclass(frozen=True, slots=True)
class Joined:
    name: str


@dataclass(frozen=True, slots=True)
class Left:
    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class Renamed:
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class Online:
    names: tuple[str, ...]
    #: How many are online; more than ``len(names)`` when the list was cut.
    count: int = -1

    def __post_init__(self) -> None:
        if self.count < 0:
            object.__setattr__(self, "count", len(self.names))


@dataclass(frozen=True, slots=True)
class Disconnected:
    reason: str


@dataclass(frozen=True, slots=True)
class Notice:
    """Any other server notice (help text, for instance)."""

    text: str


@dataclass(frozen=True, slots=True)
class Error:
    message: str


@dataclass(frozen=True, slots=True)
class Message:
    sender: str
    text: str


@dataclass(frozen=True, slots=True)
class Action:
    sender: str
    action: str


@dataclass(frozen=True, slots=True)
class Private:
    sender: str
    text: str


@dataclass(frozen=True, slots=True)
class PrivateEcho:
    recipient: str
    text: str


ServerEvent = (
    Prompt
    | Welcome
    | Joined
    | Left
    | Renamed
    | Online
    | Disconnected
    | Notice
    | Error
    | Message
    | Action
    | Private
    | PrivateEcho
)

_WELCOME = re.compile(r"Welcome, (\S+)! Online \((\d+)\): ?(.*?)(?: \(\+\d+ more\))?")
_ONLINE = re.compile(r"Online \((\d+)\): ?(.*?)(?: \(\+\d+ more\))?")
_JOINED = re.compile(r"(\S+) joined the chat")
_LEFT = re.compile(r"(\S+) left the chat \((.*)\)")
_RENAMED = re.compile(r"(\S+) is now known as (\S+)")
_DISCONNECTED = "Disconnected: "


def _names(listing: str) -> tuple[str, ...]:
    return tuple(listing.split(", ")) if listing else ()


def split_message(text: str) -> tuple[str, str] | None:
    """Fast path for the hot loop of a receiver: ``(sender, text)`` when the
    line is a chat message, else ``None``.  Agrees with
    :func:`parse_server_line` on every line."""
    sender, sep, body = text.partition(MESSAGE_SEPARATOR)
    if not sep or not sender or sender[0] in RESERVED_FIRST or " " in sender:
        return None
    return sender, body


def parse_server_line(text: str) -> ServerEvent:
    """Classify one line the server sent (already decoded to text)."""
    if text.startswith(NOTICE_PREFIX):
        body = text[len(NOTICE_PREFIX) :]
        if m := _JOINED.fullmatch(body):
            return Joined(m[1])
        if m := _LEFT.fullmatch(body):
            return Left(m[1], m[2])
        if m := _RENAMED.fullmatch(body):
            return Renamed(m[1], m[2])
        if m := _WELCOME.fullmatch(body):
            return Welcome(m[1], _names(m[3]), int(m[2]))
        if m := _ONLINE.fullmatch(body):
            return Online(_names(m[2]), int(m[1]))
        if body.startswith(_DISCONNECTED):
            return Disconnected(body[len(_DISCONNECTED) :])
        return Notice(body)
    if text.startswith(ERROR_PREFIX):
        return Error(text[len(ERROR_PREFIX) :])
    if text.startswith(PROMPT_PREFIX):
        return Prompt(text[len(PROMPT_PREFIX) :])
    if text.startswith(ACTION_PREFIX):
        sender, _, action = text[len(ACTION_PREFIX) :].partition(" ")
        return Action(sender, action)
    if text.startswith(PRIVATE_PREFIX):
        sender, _, body = text[len(PRIVATE_PREFIX) :].partition(MESSAGE_SEPARATOR)
        return Private(sender, body)
    if text.startswith(PRIVATE_TO_PREFIX):
        recipient, _, body = text[len(PRIVATE_TO_PREFIX) :].partition("] ")
        return PrivateEcho(recipient, body)
    split = split_message(text)
    if split is None:
        raise ProtocolError(f"unrecognised server line: {text[:80]!r}")
    return Message(*split)
