"""Slash commands as a dispatch table: command type -> handler.

Each handler gets the session that sent the command and the parsed command.
A handler that wants the connection closed raises :class:`EndSession`.
Adding a command means a dataclass and parser branch in ``protocol`` and one
function + table row here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from server import protocol
from server.hub import NameTaken

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
    session.send(protocol.encode_who(session.hub.names()))


def _help(session: Session, cmd: protocol.Help) -> None:
    session.send(protocol.encode_help())


def _msg(session: Session, cmd: protocol.PrivateMessage) -> None:
    target = session.hub.find(cmd.to)
    if target is None or target.name is None:
        session.send(protocol.encode_error(f"No such user: {cmd.to}"))
        return
    assert session.name is not None
    target.send(protocol.encode_private(session.name, cmd.text))
    session.send(protocol.encode_private_echo(target.name, cmd.text))


def _me(session: Session, cmd: protocol.Me) -> None:
    assert session.name is not None
    session.hub.broadcast(protocol.encode_action(session.name, cmd.action), exclude=session)


def _nick(session: Session, cmd: protocol.Nick) -> None:
    try:
        new_name = protocol.validate_name(cmd.new_name)
        session.hub.rename(session, new_name)
    except protocol.ProtocolError as exc:
        session.send(protocol.encode_error(f"Invalid name: {exc}"))
    except NameTaken:
        session.send(protocol.encode_error(f"Name taken: {cmd.new_name.strip()}"))


def _quit(session: Session, cmd: protocol.Quit) -> None:
    raise EndSession(f"quit: {cmd.reason}" if cmd.reason else "quit")


def _say(session: Session, cmd: protocol.Say) -> None:
    assert session.name is not None
    session.hub.broadcast(protocol.encode_message(session.name, cmd.text), exclude=session)


Handler = Callable[["Session", Any], None]

COMMANDS: dict[type, Handler] = {
    protocol.Say: _say,
    protocol.Who: _who,
    protocol.Help: _help,
    protocol.PrivateMessage: _msg,
    protocol.Me: _me,
    protocol.Nick: _nick,
    protocol.Quit: _quit,
}


def dispatch(session: Session, cmd: protocol.ClientCommand) -> None:
    COMMANDS[type(cmd)](session, cmd)
