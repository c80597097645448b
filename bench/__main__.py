"""``python -m bench`` / ``chat-bench``: the one command line (:mod:`bench.cli`).

The harness's packages are an extra (``pip install 'chatbench[bench]'``); a
chat server installed without it gets one line saying so, not a traceback.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType

#: Top-level modules of the ``bench`` extra (pyproject.toml) that the command line imports.
BENCH_EXTRA_MODULES = ("hdrh", "psutil", "matplotlib", "locust", "gevent", "numpy", "redis", "hiredis")


def _interrupted_while_loading(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C while the harness is still importing: nothing is started or
    written yet, so end at once.  A KeyboardInterrupt would not do: raised
    inside the import system's own clean-up (a weakref callback) Python
    prints it as "Exception ignored" and goes on, and the run starts anyway;
    raised inside a class body's ``__set_name__`` (matplotlib's ticker) it
    comes out as a RuntimeError with a traceback."""
    os.write(2, b"\ninterrupted\n")
    os._exit(130)


def main(argv: Sequence[str] | None = None) -> int:
    """:func:`bench.cli.main`, imported here so that a Ctrl-C while the
    harness is still loading (numpy, matplotlib: a second or two) ends as
    quietly as one during a run, and a missing extra is one line."""
    loading = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if loading:
        signal.signal(signal.SIGINT, _interrupted_while_loading)
    try:
        from bench.cli import build_parser
        from bench.cli import main as cli_main

        # building the parser imports every subcommand (numpy, matplotlib): still loading
        parser = build_parser()
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in BENCH_EXTRA_MODULES:
            raise
        print(
            f"chat-bench: the harness needs its own packages ({exc.name} is not installed): "
            "pip install 'chatbench[bench]' (or make install)",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        if loading:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return cli_main(argv, parser)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
