"""The server's one command table: slash command type -> handler.

Each handler gets the session that sent the command and the parsed command.
A handler that wants the connection closed raises :class:`EndSession`.
Adding a command means a dataclass and a parser row in
``server.protocol.commands`` and one function + table row here.

Chat lines (``protocol.Say``) have no row: the session batches consecutive
chat lines into one broadcast (one send per recipient per batch instead of
one per line), which a per-line handler could not do, so it handles them
itself and hands only slash commands to :func:`dispatch`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from server import protocol
from server.hub import NameTaken

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
    session.send(protocol.encode_who(session.hub.names()))


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
    session.hub.broadcast(protocol.encode_action(session.name, cmd.action), exclude=session)


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
}


def dispatch(session: Session, cmd: protocol.SlashCommand) -> None:
    """Run the handler of one slash command for ``session``."""
    COMMANDS[type(cmd)](session, cmd)
