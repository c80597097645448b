"""This project's chat protocol as the harness speaks it, parsed only through
:mod:`server.protocol`: wait for the name prompt, send the name (and, on a
server with accounts, answer the password prompt), wait for the welcome;
chat lines are ``/say``-safe lines and arrive as ``NAME: TEXT``:
probe lines as they are (:mod:`bench.measure.probeline`), so a received
block goes to the recorder untouched.

Rooms: a client of a workload with rooms ``/join`` each of its rooms
after the welcome (``#r12``), and ``/part`` the lobby unless it is one
of them; it is registered once the server confirmed each (``*** Now talking
in #r12 ...``, ``*** NAME left #lobby ...``).  It sends to a room with
``/say #r12 TEXT``, and a room's lines arrive as ``#r12 NAME: TEXT``: a
probe line whose name is ``#r12 NAME`` (:meth:`bench.workload.Plan.sender_names`).
"""

from __future__ import annotations

import re

from bench.wire.base import Adapter, Decoder, Registration, Step
from bench.wire.credentials import LOGIN_NAME, Credentials
from bench.wire.lines import BlockLineDecoder
from server import protocol

#: Longest line a harness client accepts.  Chat lines stay under the
#: server's client-line limit plus the decoration a server line adds, but the
#: welcome line lists everyone online: with 10,000 clients that is ~10,000
#: names of up to 32 characters (4 bytes each in UTF-8) plus separators, far
#: past 4 KiB.  4 MiB covers that worst case; the decoder only holds a partial
#: line this long while such a line is actually arriving.
RECEIVER_LINE_LIMIT = 4 << 20


#: The one room's join and leave notices (server.protocol.events: encode_joined,
#: encode_left), a whole line each: the name, and which ("j": a join).
_NOTICE = re.compile(rb"^\*\*\* (\S+) (?:(j)oined the chat|left the chat \([^\n]*\))\r?\n", re.MULTILINE)


#: The same lines, nothing captured: what :func:`strip_notices` removes.
_NOTICE_LINE = re.compile(rb"^\*\*\* \S+ (?:joined the chat|left the chat \([^\n]*\))\r?\n", re.MULTILINE)


def strip_notices(block: bytes) -> bytes:
    """:meth:`Adapter.strip_notices` for our protocol's lines: the same
    lines removed as by :func:`split_notices`, in about 40% of its time
    (no names, kinds or pieces of text made: 2.0 against 5.1 us for a block
    of 12 notices)."""
    if b"*** " not in block:
        return block
    return _NOTICE_LINE.sub(b"", block)


def split_notices(block: bytes) -> tuple[bytes, list[bytes], list[bytes]]:
    """:meth:`Adapter.split_notices` for our protocol's lines."""
    if b"*** " not in block:
        return block, [], []
    # One pass of the pattern (a churn run's receivers read little else: it
    # was 38% of a worker's time as a findall and a sub, half that as a split):
    # [text, name, "j" or None, text, name, ...].
    parts = _NOTICE.split(block)
    if len(parts) == 1:
        return block, [], []
    names, kinds = parts[1::3], parts[2::3]
    joins = [name for name, j in zip(names, kinds, strict=True) if j]
    leaves = [name for name, j in zip(names, kinds, strict=True) if not j]
    return b"".join(parts[0::3]), joins, leaves


def wire_room(room: str) -> str:
    """A plan's room on our server: ``#NAME``, the lobby for the target's one room."""
    return f"#{room}" if room else protocol.DEFAULT_ROOM


def room_commands(rooms: tuple[str, ...]) -> tuple[bytes, frozenset[str]]:
    """What a client in ``rooms`` sends after its welcome (joins, and the
    lobby's part when it is not among them), and the rooms the server must
    confirm (the lobby: its part)."""
    joins = [wire_room(r) for r in rooms if r]
    if not joins and "" in rooms:
        return b"", frozenset()
    data = b"".join(protocol.encode_join(room) for room in joins)
    if "" not in rooms:
        data += protocol.encode_part(protocol.DEFAULT_ROOM)
        return data, frozenset([*joins, protocol.DEFAULT_ROOM])
    return data, frozenset(joins)


class ChatRegistration:
    """Wait for the name prompt, send the name, answer the password prompt
    if the server asks one (``password``; an empty line, a guest's answer,
    without one), wait for the welcome; then join the client's rooms and
    leave the lobby (see the module docstring).  A failed login is the
    server's ``! Login failed: ...`` line, as the error."""

    __slots__ = ("name", "password", "rooms", "sent_name", "sent_password", "waiting", "welcome")

    def __init__(self, name: str, rooms: tuple[str, ...] = ("",), *, password: str | None = None) -> None:
        self.name = name
        self.password = password
        self.rooms = rooms
        self.sent_name = False
        self.sent_password = False
        #: rooms whose join (or, for the lobby, part) is not confirmed yet; None before the welcome
        self.waiting: set[str] | None = None
        #: how the server's welcome for this name begins: known without parsing
        #: its list of who is online (up to 4 KiB: under churn, every new
        #: connection's, a tenth of a worker's time when parsed in full)
        self.welcome = protocol.welcome_prefix(name).encode()

    def connected(self) -> bytes:
        return b""

    def line(self, line: bytes) -> Step:
        if self.sent_name and self.waiting is None and line.startswith(self.welcome):
            return self._welcomed()
        try:
            event = protocol.parse_server_line(protocol.decode_text(line))
        except protocol.ProtocolError:
            return Step()
        if isinstance(event, protocol.Prompt):
            if event.text == protocol.PASSWORD_PROMPT and self.sent_name and not self.sent_password:
                self.sent_password = True
                return Step(send=protocol.encode_line(self.password or ""))
            if self.sent_name:  # a second prompt: the name was refused (the error line said why)
                return Step(error="name refused")
            self.sent_name = True
            return Step(send=protocol.encode_line(self.name))
        if self.sent_name and self.waiting is None and isinstance(event, protocol.Welcome):
            return self._welcomed()
        if self.waiting:
            return self._room_step(event)
        if self.sent_name and isinstance(event, protocol.Error):
            return Step(error=f"refused: {event.message[:60]}")
        if isinstance(event, protocol.Disconnected):
            return Step(error=f"disconnected: {event.reason[:60]}")
        return Step()

    def _welcomed(self) -> Step:
        """The welcome: join the plan's rooms (done at once in the lobby alone)."""
        send, waiting = room_commands(self.rooms)
        self.waiting = set(waiting)
        return Step(send=send, done=not waiting)

    def _room_step(self, event: protocol.ServerEvent) -> Step:
        """A line while the joins and the lobby's part are being confirmed."""
        waiting = self.waiting
        assert waiting is not None
        if isinstance(event, protocol.Talking):
            waiting.discard(event.room)
        elif isinstance(event, protocol.Left) and event.name == self.name and event.room == protocol.DEFAULT_ROOM:
            waiting.discard(protocol.DEFAULT_ROOM)
        elif isinstance(event, protocol.Error):
            return Step(error=f"room refused: {event.message[:60]}")
        elif isinstance(event, protocol.Disconnected):
            return Step(error=f"disconnected: {event.reason[:60]}")
        return Step(done=not waiting)


class ChatAdapter(Adapter):
    """Our protocol: received lines are probe lines as they are."""

    name = "chat"
    replies_needed = False
    line_errors = (protocol.LineTooLong,)
    login = LOGIN_NAME

    def __init__(self, receive_limit: int = RECEIVER_LINE_LIMIT) -> None:
        self.receive_limit = receive_limit

    def decoder(self) -> Decoder:
        return BlockLineDecoder(self.receive_limit)

    def registration(
        self, name: str, credentials: Credentials | None = None, rooms: tuple[str, ...] = ("",)
    ) -> Registration:
        return ChatRegistration(name, rooms, password=credentials.password if credentials is not None else None)

    def encode_chat(self, text: str) -> bytes:
        return protocol.encode_say(text)

    def encode_message(self, sender: str, text: str, room: str = "") -> bytes:
        return protocol.encode_say_to(f"#{room}", text) if room else protocol.encode_say(text)

    def check_text(self, text: str, room: str = "") -> str | None:
        size = len(self.encode_message("", text, room)) - len(protocol.NEWLINE)
        if size > protocol.DEFAULT_MAX_LINE_BYTES:
            return (
                f"a {size}-byte chat line is longer than the server's {protocol.DEFAULT_MAX_LINE_BYTES}-byte line limit"
            )
        return None

    notices = "*** NAME joined the chat / *** NAME left the chat (REASON), to the room's members"

    def encode_quit(self) -> bytes:
        return protocol.encode_quit()

    def split_notices(self, block: bytes) -> tuple[bytes, list[bytes], list[bytes]]:
        return split_notices(block)

    def strip_notices(self, block: bytes) -> bytes:
        return strip_notices(block)

    def control(self, text: str) -> str | None:
        try:
            event = protocol.parse_server_line(text)
        except protocol.ProtocolError:
            return None
        if isinstance(event, protocol.Disconnected):
            return f"disconnected: {event.reason[:60]}"
        return None
