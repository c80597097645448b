"""``python -m server`` / ``chat-server``: argument parsing only.

``chat-server [OPTIONS]`` runs the server; ``chat-server passwd NAME
--accounts FILE`` adds an account (:mod:`server.passwd`)."""

from __future__ import annotations

import sys

from server.app import serve
from server.config import config_from_args


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["passwd"]:
        from server.passwd import main as passwd

        return passwd(args[1:])
    return serve(config_from_args(args))


if __name__ == "__main__":
    sys.exit(main())
