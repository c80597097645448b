"""``chat-server passwd NAME --accounts FILE``: add an account or change its password.

The password is asked twice without echo on a terminal; with stdin piped,
its first line is the password (for scripts: ``printf '%s\\n' "$PW" |
chat-server passwd alice --accounts accounts.txt``).  The file is created if
missing and replaced atomically, readable by its owner only
(:func:`server.accounts.set_password`).  Exit codes: 0 done, 1 the file
could not be written, 2 bad usage (invalid name, empty or mismatched
password, a broken accounts file).
"""

from __future__ import annotations

import argparse
import getpass
import sys

from server import protocol
from server.accounts import AccountsError, check_password, set_password


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chat-server passwd",
        description="Add an account to a chat server's password file, or change its password "
        "(scrypt, salted). Asks twice without echo; with stdin piped, reads one line.",
    )
    parser.add_argument("name", metavar="NAME", help="the account's username")
    parser.add_argument("--accounts", metavar="FILE", required=True, help="the password file (created if missing)")
    return parser


def read_password(name: str) -> str:
    """The new password: asked twice without echo, or stdin's first line."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    first = getpass.getpass(f"New password for {name}: ")
    if getpass.getpass("Again: ") != first:
        raise ValueError("the passwords do not match")
    return first


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        name = protocol.validate_name(args.name)
    except protocol.ProtocolError as exc:
        parser.error(f"{args.name!r} is not a valid username: {exc}")
    try:
        password = read_password(name)
    except ValueError as exc:
        parser.error(str(exc))
    except (EOFError, KeyboardInterrupt):
        print(file=sys.stderr)
        return 2
    why = check_password(password)
    if why is not None:
        parser.error(why)
    try:
        new = set_password(args.accounts, name, password)
    except AccountsError as exc:
        print(f"chat-server passwd: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"chat-server passwd: cannot write {args.accounts}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"{'added' if new else 'changed the password of'} {name} in {args.accounts}", file=sys.stderr)
    return 0
