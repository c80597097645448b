"""``python -m server`` / ``chat-server``: argument parsing only."""

from __future__ import annotations

import sys

from server.app import serve
from server.config import config_from_args


def main(argv: list[str] | None = None) -> int:
    return serve(config_from_args(argv))


if __name__ == "__main__":
    sys.exit(main())
