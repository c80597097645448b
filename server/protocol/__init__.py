"""The chatbench wire protocol, sans-IO.

This package is the only place that knows how bytes on the wire map to chat
events.  The server, the terminal client, the swarm and the Locust users all
import it (``from server import protocol``; every name below is reachable as
``protocol.X``); none of them parses the protocol on its own.  It uses the
standard library only and never touches a socket: callers feed it bytes and
get lines and frozen event objects back (the shape h11 made popular).

One module per layer:

``framing``   bytes <-> lines: :class:`LineDecoder`, ``split_block``, the limits
``names``     valid usernames, the uniqueness key, safe client text
``commands``  client -> server: command dataclasses and ``parse_client_line``
``events``    server -> client: ``encode_*`` and ``parse_server_line``

See ``docs/protocol.md`` for the protocol itself.
"""

from __future__ import annotations

from server.protocol.commands import (
    COMMAND_USAGE,
    ClientCommand,
    Help,
    Me,
    Nick,
    PrivateMessage,
    Quit,
    Say,
    SlashCommand,
    Who,
    encode_say,
    parse_client_line,
)
from server.protocol.events import (
    ACTION_PREFIX,
    ERROR_PREFIX,
    MESSAGE_SEPARATOR,
    NAME_LIST_BYTES,
    NAME_PROMPT,
    NOTICE_PREFIX,
    PASSWORD_PROMPT,
    PRIVATE_PREFIX,
    PRIVATE_TO_PREFIX,
    PROMPT_PREFIX,
    Action,
    Disconnected,
    Error,
    Joined,
    Left,
    Message,
    Notice,
    Online,
    Private,
    PrivateEcho,
    Prompt,
    Renamed,
    ServerEvent,
    Welcome,
    encode_action,
    encode_disconnect,
    encode_error,
    encode_help,
    encode_joined,
    encode_left,
    encode_message,
    encode_password_prompt,
    encode_private,
    encode_private_echo,
    encode_prompt,
    encode_renamed,
    encode_welcome,
    encode_who,
    parse_server_line,
    split_message,
)
from server.protocol.framing import (
    DEFAULT_MAX_LINE_BYTES,
    NEWLINE,
    SERVER_LINE_OVERHEAD,
    LineDecoder,
    LineTooLong,
    ProtocolError,
    decode_text,
    encode_line,
    split_block,
)
from server.protocol.names import MAX_NAME_CHARS, RESERVED_FIRST, name_key, sanitize_text, validate_name

__all__ = [
    "ACTION_PREFIX",
    "COMMAND_USAGE",
    "DEFAULT_MAX_LINE_BYTES",
    "ERROR_PREFIX",
    "MAX_NAME_CHARS",
    "MESSAGE_SEPARATOR",
    "NAME_LIST_BYTES",
    "NAME_PROMPT",
    "NEWLINE",
    "NOTICE_PREFIX",
    "PASSWORD_PROMPT",
    "PRIVATE_PREFIX",
    "PRIVATE_TO_PREFIX",
    "PROMPT_PREFIX",
    "RESERVED_FIRST",
    "SERVER_LINE_OVERHEAD",
    "Action",
    "ClientCommand",
    "Disconnected",
    "Error",
    "Help",
    "Joined",
    "Left",
    "LineDecoder",
    "LineTooLong",
    "Me",
    "Message",
    "Nick",
    "Notice",
    "Online",
    "Private",
    "PrivateEcho",
    "PrivateMessage",
    "Prompt",
    "ProtocolError",
    "Quit",
    "Renamed",
    "Say",
    "ServerEvent",
    "SlashCommand",
    "Welcome",
    "Who",
    "decode_text",
    "encode_action",
    "encode_disconnect",
    "encode_error",
    "encode_help",
    "encode_joined",
    "encode_left",
    "encode_line",
    "encode_message",
    "encode_password_prompt",
    "encode_private",
    "encode_private_echo",
    "encode_prompt",
    "encode_renamed",
    "encode_say",
    "encode_welcome",
    "encode_who",
    "name_key",
    "parse_client_line",
    "parse_server_line",
    "sanitize_text",
    "split_block",
    "split_message",
    "validate_name",
]
