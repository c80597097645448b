"""Server -> client lines, sans-IO: encoders and the events a client parses.

One kind per line, told apart by the first characters::

    ? PROMPT              asks for a username
    *** NOTICE            welcome, join, leave, rename, who, help, disconnect
    ! ERROR               something the client asked for was refused
    * NAME ACTION         a /me action
    [private] NAME: TEXT  / [private to NAME] TEXT
    #ROOM LINE            a chat message or action in ROOM (not the default room)
    NAME: TEXT            a chat message (in the default room)

The server encodes with the ``encode_*`` functions; a receiver classifies a
line with :func:`parse_server_line` (or :func:`split_message` on its hot path).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from server.protocol.commands import COMMAND_USAGE
from server.protocol.framing import ProtocolError, encode_line
from server.protocol.names import RESERVED_FIRST
from server.protocol.rooms import ROOM_PREFIX

PROMPT_PREFIX = "? "
NOTICE_PREFIX = "*** "
ERROR_PREFIX = "! "
ACTION_PREFIX = "* "
PRIVATE_PREFIX = "[private] "
PRIVATE_TO_PREFIX = "[private to "
MESSAGE_SEPARATOR = ": "

NAME_PROMPT = "Enter your username:"
#: Asked after the name when the server has accounts (``--accounts``): the
#: next line is the password (empty for a guest where guests are allowed).
PASSWORD_PROMPT = "Enter your password:"


def encode_prompt() -> bytes:
    return encode_line(PROMPT_PREFIX + NAME_PROMPT)


def encode_password_prompt() -> bytes:
    return encode_line(PROMPT_PREFIX + PASSWORD_PROMPT)


#: Bytes of names listed in one welcome or /who line.  With thousands of
#: users the full list would not fit a line any client accepts, so it is cut
#: and ends with "(+N more)"; the count in parentheses is always exact.
NAME_LIST_BYTES = 2048


def _listing(items: list[str], total: int | None = None) -> str:
    """``(N): a, b (+K more)``, at most NAME_LIST_BYTES of items; ``total``
    when ``items`` is already only part of them."""
    count = len(items) if total is None else max(total, len(items))
    shown: list[str] = []
    used = 0
    for item in items:
        used += len(item.encode("utf-8")) + 2
        if used > NAME_LIST_BYTES:
            break
        shown.append(item)
    listing = ", ".join(shown)
    if len(shown) < count:
        listing += f" (+{count - len(shown)} more)"
    return f"({count}): {listing}"


def _name_list(online: list[str], total: int | None = None) -> str:
    """``Online (N): a, b (+K more)``."""
    return "Online " + _listing(online, total)


def welcome_prefix(name: str) -> str:
    """How ``name``'s welcome begins, before the list of who is online (a
    client knows its welcome by it without parsing the list)."""
    return f"{NOTICE_PREFIX}Welcome, {name}! "


def encode_welcome(name: str, online: list[str], total: int | None = None) -> bytes:
    return encode_line(welcome_prefix(name) + _name_list(online, total))


def encode_joined(name: str) -> bytes:
    return encode_line(f"{NOTICE_PREFIX}{name} joined the chat")


def encode_left(name: str, reason: str) -> bytes:
    return encode_line(f"{NOTICE_PREFIX}{name} left the chat ({reason})")


def encode_renamed(old: str, new: str) -> bytes:
    return encode_line(f"{NOTICE_PREFIX}{old} is now known as {new}")


def encode_who(online: list[str]) -> bytes:
    return encode_line(f"{NOTICE_PREFIX}{_name_list(online)}")


def encode_room_joined(name: str, room: str) -> bytes:
    """To a room's members: ``name`` joined ``room`` (not the default room's
    join at registration, which is ``joined the chat``)."""
    return encode_line(f"{NOTICE_PREFIX}{name} joined {room}")


def encode_room_left(name: str, room: str, reason: str) -> bytes:
    return encode_line(f"{NOTICE_PREFIX}{name} left {room} ({reason})")


def encode_talking(room: str, members: list[str], total: int | None = None) -> bytes:
    """To a client whose current room is now ``room`` (after /join, or after
    it parted its current room): who is there."""
    return encode_line(f"{NOTICE_PREFIX}Now talking in {room} {_listing(members, total)}")


#: To a client that parted its last room.
NO_ROOM = "You are in no room now; /join #ROOM to talk"


def encode_no_room() -> bytes:
    return encode_line(NOTICE_PREFIX + NO_ROOM)


def encode_room_who(room: str, members: list[str], total: int | None = None) -> bytes:
    return encode_line(f"{NOTICE_PREFIX}Online in {room} {_listing(members, total)}")


def encode_rooms(rooms: list[tuple[str, int]], total: int | None = None) -> bytes:
    """``/rooms``: every room with its member count, as given (the server
    lists the biggest first)."""
    return encode_line(f"{NOTICE_PREFIX}Rooms {_listing([f'{r} ({n})' for r, n in rooms], total)}")


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


def encode_room_message(room: str, sender: str, text: str) -> bytes:
    """A chat message in ``room`` (any room but the default one)."""
    return encode_line(f"{room} {sender}{MESSAGE_SEPARATOR}{text}")


def encode_room_action(room: str, sender: str, action: str) -> bytes:
    return encode_line(f"{room} {ACTION_PREFIX}{sender} {action}")


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
    #: The room joined; None: joined the chat (registered: the server and the default room).
    room: str | None = None


@dataclass(frozen=True, slots=True)
class Left:
    name: str
    reason: str
    #: The room left; None: left the chat (disconnected: every room at once).
    room: str | None = None


@dataclass(frozen=True, slots=True)
class Renamed:
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class Online:
    names: tuple[str, ...]
    #: How many are online; more than ``len(names)`` when the list was cut.
    count: int = -1
    #: ``/who #ROOM``: the room listed; None: everyone online.
    room: str | None = None

    def __post_init__(self) -> None:
        if self.count < 0:
            object.__setattr__(self, "count", len(self.names))


@dataclass(frozen=True, slots=True)
class Talking:
    """The client's current room is now ``room``; its members."""

    room: str
    names: tuple[str, ...]
    count: int = -1

    def __post_init__(self) -> None:
        if self.count < 0:
            object.__setattr__(self, "count", len(self.names))


@dataclass(frozen=True, slots=True)
class RoomList:
    """``/rooms``: (room, member count) pairs, the biggest first."""

    rooms: tuple[tuple[str, int], ...]
    #: How many rooms there are; more than ``len(rooms)`` when the list was cut.
    count: int = -1

    def __post_init__(self) -> None:
        if self.count < 0:
            object.__setattr__(self, "count", len(self.rooms))


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
    #: The room it was said in; None: the default room.
    room: str | None = None


@dataclass(frozen=True, slots=True)
class Action:
    sender: str
    action: str
    #: The room it was done in; None: the default room.
    room: str | None = None


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
    | Talking
    | RoomList
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
_ROOM_JOINED = re.compile(r"(\S+) joined (#\S+)")
_ROOM_LEFT = re.compile(r"(\S+) left (#\S+) \((.*)\)")
_TALKING = re.compile(r"Now talking in (#\S+) \((\d+)\): ?(.*?)(?: \(\+\d+ more\))?")
_ROOM_ONLINE = re.compile(r"Online in (#\S+) \((\d+)\): ?(.*?)(?: \(\+\d+ more\))?")
_ROOMS = re.compile(r"Rooms \((\d+)\): ?(.*?)(?: \(\+\d+ more\))?")
_ROOM_ENTRY = re.compile(r"(#\S+) \((\d+)\)")
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


def _rooms(listing: str) -> tuple[tuple[str, int], ...]:
    return tuple((m[1], int(m[2])) for m in _ROOM_ENTRY.finditer(listing))


def _parse_room_notice(body: str) -> ServerEvent | None:
    if m := _ROOM_JOINED.fullmatch(body):
        return Joined(m[1], m[2])
    if m := _ROOM_LEFT.fullmatch(body):
        return Left(m[1], m[3], m[2])
    if m := _TALKING.fullmatch(body):
        return Talking(m[1], _names(m[3]), int(m[2]))
    if m := _ROOM_ONLINE.fullmatch(body):
        return Online(_names(m[3]), int(m[2]), m[1])
    if m := _ROOMS.fullmatch(body):
        return RoomList(_rooms(m[2]), int(m[1]))
    return None


def _parse_notice(body: str) -> ServerEvent:
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
    return _parse_room_notice(body) or Notice(body)


def split_room_line(text: str) -> tuple[str, str] | None:
    """``(room, rest)`` when ``text`` is a room's line (``#ROOM rest``), else None."""
    if not text.startswith(ROOM_PREFIX):
        return None
    room, sep, rest = text.partition(" ")
    return (room, rest) if sep and len(room) > 1 else None


def _parse_room_line(text: str) -> ServerEvent:
    split = split_room_line(text)
    if split is not None:
        room, rest = split
        if rest.startswith(ACTION_PREFIX):
            sender, _, action = rest[len(ACTION_PREFIX) :].partition(" ")
            return Action(sender, action, room)
        message = split_message(rest)
        if message is not None:
            return Message(*message, room)
    raise ProtocolError(f"unrecognised room line: {text[:80]!r}")


def parse_server_line(text: str) -> ServerEvent:
    """Classify one line the server sent (already decoded to text)."""
    if text.startswith(NOTICE_PREFIX):
        return _parse_notice(text[len(NOTICE_PREFIX) :])
    if text.startswith(ROOM_PREFIX):
        return _parse_room_line(text)
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
