"""``python -m client`` / ``chat-client``: argument parsing only."""

from __future__ import annotations

import argparse
import os
import ssl
import sys

from client.app import DEFAULT_TIMEOUT, Options, run
from client.connection import client_context
from server import protocol

#: The environment variable a script may put the password in (see --password-file).
PASSWORD_ENV = "CHAT_PASSWORD"
#: The port with --tls unless --port says otherwise (the README's --tls-port).
DEFAULT_TLS_PORT = 8443
#: What --insecure prints, every time.
INSECURE_WARNING = (
    "chat-client: WARNING: --insecure: the server's certificate is NOT checked; anyone on the way "
    "can read and change this chat, and your password"
)


def build_parser() -> argparse.ArgumentParser:
    commands = ", ".join(protocol.COMMAND_USAGE.values())
    parser = argparse.ArgumentParser(
        prog="chat-client",
        description=(
            "Terminal client for the chatbench chat server. Lines you type are sent as chat; "
            "incoming messages appear above the input line without disturbing it."
        ),
        epilog=(
            f"Commands (handled by the server): {commands}; //TEXT sends a line starting with '/'. "
            "Ctrl-D or Ctrl-C leave like /quit. With stdin piped, each line is sent and end of input "
            "sends /quit. Exit codes: 0 normal quit; 1 connection refused or lost, TLS failed, or "
            "disconnected by the server; 2 bad usage, or (stdin piped) the server refused the name or login. "
            f"A server with accounts asks for a password: --password-file, ${PASSWORD_ENV}, or typed (not shown)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="server address")
    parser.add_argument(
        "--port", type=int, default=None, help=f"server TCP port (default: 8000, or {DEFAULT_TLS_PORT} with --tls)"
    )
    parser.add_argument(
        "--name",
        default=None,
        help="username to join with (answers the server's prompt); without it the first line you type is the name",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        help="seconds to wait for the connection (and TLS handshake), then for the server's first line",
    )
    tls = parser.add_argument_group("TLS and login")
    tls.add_argument("--tls", action="store_true", help="connect with TLS (1.2+), checking the server's certificate")
    tls.add_argument(
        "--ca", metavar="FILE", help="trust this CA certificate (PEM) for the server's certificate; implies --tls"
    )
    tls.add_argument(
        "--insecure",
        action="store_true",
        help="TLS without checking the server's certificate (testing only: prints a warning); implies --tls",
    )
    tls.add_argument(
        "--password-file",
        metavar="FILE",
        help=f"the password is this file's first line (for scripts; also ${PASSWORD_ENV}); "
        "default: asked when the server wants one",
    )
    return parser


def tls_context(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ssl.SSLContext | None:
    if not (args.tls or args.ca or args.insecure):
        return None
    if args.insecure:
        print(INSECURE_WARNING, file=sys.stderr)
    try:
        return client_context(args.ca, args.insecure)
    except (OSError, ssl.SSLError) as exc:
        parser.error(f"--ca {args.ca}: cannot load it: {getattr(exc, 'strerror', None) or exc}")


def password(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str | None:
    if args.password_file is None:
        return os.environ.get(PASSWORD_ENV)
    try:
        with open(args.password_file, encoding="utf-8") as file:
            return file.readline().removesuffix("\n").removesuffix("\r")
    except (OSError, UnicodeDecodeError) as exc:
        parser.error(f"--password-file {args.password_file}: {getattr(exc, 'strerror', None) or exc}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    context = tls_context(parser, args)
    if args.port is None:
        args.port = 8000 if context is None else DEFAULT_TLS_PORT
    if args.timeout <= 0:
        parser.error(f"--timeout must be positive, got {args.timeout}")
    if not 1 <= args.port <= 65535:
        parser.error(f"--port must be 1..65535, got {args.port}")
    if args.name is not None:
        try:
            args.name = protocol.validate_name(args.name)
        except protocol.ProtocolError as exc:
            parser.error(f"--name {args.name!r} is not a valid username: {exc}")
    return run(Options(args.host, args.port, args.name, context, password(parser, args), args.timeout))


if __name__ == "__main__":
    sys.exit(main())
