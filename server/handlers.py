"""The server's one command table: slash command type -> handler.

Each handler gets the session that sent the command and the parsed command.
A handler that wants the connection closed raises :class:`EndSession`.
Adding a command means a dataclass and a parser row in
``server.protocol.commands`` and one function + table row here.

Chat lines (``protocol.Say``, and ``/say #ROOM``'s ``protocol.SayTo``) have
no row: the session batches consecutive chat lines to one room into one
broadcast (one send per recipient per batch instead of one per line), which a
per-line handler could not do, so it handles them itself and hands only the
other slash commands to :func:`dispatch`.

A room command that cannot be done (not in that room, past a limit) gets one
error line and the session goes on: the hub raises :class:`RoomError` with the
line's text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from server import protocol
from server.hub import NameTaken
from server.rooms import NO_ROOM_ERROR, RoomError

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from server.session import Session


class EndSession(Exception):
    """Close this session.  ``reason`` is what others see in the leave notice,
    ``farewell`` what the client itself is told in ``*** Disconnected:``."""

    def __init__(self, reason: str, farewell: str = "bye", linger: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.farewell = farewell
        #: Wait for the client to close after the farewell (see Session._linger);
        #: False for a client that is flooding and would only keep us reading.
        self.linger = linger


def _who(session: Session, cmd: protocol.Who) -> None:
    if cmd.room is None:
        session.send(protocol.encode_who(session.hub.names()))
        return
    members = session.hub.room_members(cmd.room)
    if members is None:
        raise RoomError(f"No such room: {cmd.room}")
    session.send(protocol.encode_room_who(cmd.room, *members))


def _help(session: Session, cmd: protocol.Help) -> None:
    session.send(protocol.encode_help())


def _msg(session: Session, cmd: protocol.PrivateMessage) -> None:
    assert session.name is not None
    target_name = session.hub.send_private(session.name, cmd.to, cmd.text)
    if target_name is None:
        session.send(protocol.encode_error(f"No such user: {cmd.to}"))
        return
    session.send(protocol.encode_private_echo(target_name, cmd.text))


def _me(session: Session, cmd: protocol.Me) -> None:
    assert session.name is not None
    room = session.room
    if room is None:
        raise RoomError(NO_ROOM_ERROR)
    session.hub.broadcast(room.action(session.name, cmd.action), session, room)


def _join(session: Session, cmd: protocol.Join) -> None:
    session.room = session.hub.join_room(session, cmd.room)


def _part(session: Session, cmd: protocol.Part) -> None:
    current, changed = session.hub.part_room(session, cmd.room, cmd.reason)
    if changed:
        session.room = current


def _rooms(session: Session, cmd: protocol.Rooms) -> None:
    session.send(protocol.encode_rooms(session.hub.room_list()))


def _nick(session: Session, cmd: protocol.Nick) -> None:
    try:
        new_name = protocol.validate_name(cmd.new_name)
        refusal = session.may_rename(new_name)  # accounts: registered names are their owners'
        if refusal is not None:
            session.send(protocol.encode_error(refusal))
            return
        old_name = session.hub.rename(session, new_name)
        session.name = new_name
        log.info("%s is now known as %s", old_name, new_name)
    except protocol.ProtocolError as exc:
        session.send(protocol.encode_error(f"Invalid name: {exc}"))
    except NameTaken:
        session.send(protocol.encode_error(f"Name taken: {cmd.new_name.strip()}"))


def _quit(session: Session, cmd: protocol.Quit) -> None:
    raise EndSession(f"quit: {cmd.reason}" if cmd.reason else "quit")


Handler = Callable[["Session", Any], None]

#: No ``protocol.Say`` row: chat lines are batched by the session (see above).
COMMANDS: dict[type, Handler] = {
    protocol.Who: _who,
    protocol.Help: _help,
    protocol.PrivateMessage: _msg,
    protocol.Me: _me,
    protocol.Nick: _nick,
    protocol.Quit: _quit,
    protocol.Join: _join,
    protocol.Part: _part,
    protocol.Rooms: _rooms,
}


def dispatch(session: Session, cmd: protocol.SlashCommand) -> None:
    """Run the handler of one slash command for ``session``."""
    try:
        COMMANDS[type(cmd)](session, cmd)
    except RoomError as exc:
        session.send(protocol.encode_error(str(exc)))
