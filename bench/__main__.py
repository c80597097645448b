"""``python -m bench`` / ``chat-bench``: the one command line (:mod:`bench.cli`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """:func:`bench.cli.main`, imported here so that a Ctrl-C while the
    harness is still loading (numpy, matplotlib: a second or two) ends as
    quietly as one during a run."""
    try:
        from bench.cli import main as cli_main

        return cli_main(argv)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
