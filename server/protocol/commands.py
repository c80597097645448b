"""Client -> server lines, sans-IO: the commands a registered client sends.

``TEXT`` is a chat message to the client's current room (:class:`Say`),
``/CMD ARGS`` a command (``/who``, ``/msg``, ``/me``, ``/nick``, ``/quit``,
``/help``, and the rooms' ``/join``, ``/part``, ``/say``, ``/rooms``) and
``//TEXT`` sends ``/TEXT``.  Each command is a frozen dataclass; :func:`parse_client_line`
turns a line into one through a table of argument parsers, one row per
command word.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import final

from server.protocol.framing import ProtocolError, encode_line
from server.protocol.rooms import validate_room


@final  # so ``type(cmd) is Say`` (the server's hot path) narrows it out for mypy
@dataclass(frozen=True, slots=True)
class Say:
    text: str


@final  # batched like Say on the server's hot path
@dataclass(frozen=True, slots=True)
class SayTo:
    """``/say #ROOM TEXT``: chat to one of the client's rooms."""

    room: str
    text: str


@dataclass(frozen=True, slots=True)
class Who:
    #: ``/who #ROOM`` lists a room; None: everyone online.
    room: str | None = None


@dataclass(frozen=True, slots=True)
class Join:
    room: str


@dataclass(frozen=True, slots=True)
class Part:
    room: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Rooms:
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


#: What a slash command line parses to (a chat line is a :class:`Say`).
SlashCommand = Who | PrivateMessage | Me | Nick | Quit | Help | Join | Part | Rooms
ClientCommand = Say | SayTo | SlashCommand

#: Usage strings, also what /help prints.
COMMAND_USAGE: dict[str, str] = {
    "who": "/who [#ROOM]",
    "msg": "/msg NAME TEXT",
    "me": "/me ACTION",
    "nick": "/nick NEWNAME",
    "join": "/join #ROOM",
    "part": "/part #ROOM [REASON]",
    "say": "/say #ROOM TEXT",
    "rooms": "/rooms",
    "quit": "/quit [REASON]",
    "help": "/help",
}


def _usage(command: str) -> ProtocolError:
    return ProtocolError(f"usage: {COMMAND_USAGE[command]}")


def _me(rest: str) -> Me:
    if not rest:
        raise _usage("me")
    return Me(rest)


def _nick(rest: str) -> Nick:
    if not rest:
        raise _usage("nick")
    return Nick(rest)


def _msg(rest: str) -> PrivateMessage:
    to, _, body = rest.partition(" ")
    if not to or not body.strip():
        raise _usage("msg")
    return PrivateMessage(to, body.strip())


def _room_and_rest(command: str, rest: str) -> tuple[str, str]:
    """``#ROOM REST``: the room (validated) and the stripped rest."""
    room, _, tail = rest.partition(" ")
    if not room:
        raise _usage(command)
    return validate_room(room), tail.strip()


def _join(rest: str) -> Join:
    room, extra = _room_and_rest("join", rest)
    if extra:
        raise _usage("join")
    return Join(room)


def _part(rest: str) -> Part:
    return Part(*_room_and_rest("part", rest))


def _say(rest: str) -> SayTo:
    room, text = _room_and_rest("say", rest)
    if not text:
        raise _usage("say")
    return SayTo(room, text)


def _who(rest: str) -> Who:
    if not rest:
        return Who()
    room, extra = _room_and_rest("who", rest)
    if extra:
        raise _usage("who")
    return Who(room)


#: Command word (lower case) -> parser of the stripped rest of the line.
_PARSERS: dict[str, Callable[[str], SlashCommand | SayTo]] = {
    "who": _who,
    "help": lambda rest: Help(),
    "quit": Quit,
    "me": _me,
    "nick": _nick,
    "msg": _msg,
    "join": _join,
    "part": _part,
    "say": _say,
    "rooms": lambda rest: Rooms(),
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
    parse = _PARSERS.get(word.lower())
    if parse is None:
        raise ProtocolError(f"unknown command /{word}; try /help")
    return parse(rest.strip())


def encode_say(text: str) -> bytes:
    """What a client sends to say ``text`` (escaping a leading slash)."""
    return encode_line("/" + text if text.startswith("/") else text)


def encode_say_to(room: str, text: str) -> bytes:
    """What a client sends to say ``text`` in ``room`` (``#ROOM``, one of its rooms)."""
    return encode_line(f"/say {room} {text}")


def encode_join(room: str) -> bytes:
    """What a client sends to join ``room`` (``#ROOM``)."""
    return encode_line(f"/join {room}")


def encode_part(room: str) -> bytes:
    """What a client sends to leave ``room`` (``#ROOM``)."""
    return encode_line(f"/part {room}")
