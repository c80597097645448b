"""``python -m client`` / ``chat-client``: argument parsing only."""

from __future__ import annotations

import argparse
import sys

from client.app import run
from server import protocol


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
            "sends /quit. Exit codes: 0 normal quit; 1 connection refused or lost, or disconnected "
            "by the server; 2 bad usage, or (stdin piped) the server refused the name."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="server address")
    parser.add_argument("--port", type=int, default=8000, help="server TCP port")
    parser.add_argument(
        "--name",
        default=None,
        help="username to join with (answers the server's prompt); without it the first line you type is the name",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 1 <= args.port <= 65535:
        parser.error(f"--port must be 1..65535, got {args.port}")
    if args.name is not None:
        try:
            args.name = protocol.validate_name(args.name)
        except protocol.ProtocolError as exc:
            parser.error(f"--name {args.name!r} is not a valid username: {exc}")
    return run(args.host, args.port, args.name)


if __name__ == "__main__":
    sys.exit(main())
