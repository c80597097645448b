"""``python -m bench`` / ``chat-bench``: the one command line (:mod:`bench.cli`).

The harness's packages are an extra (``pip install 'chatbench[bench]'``); a
chat server installed without it gets one line saying so, not a traceback.
"""

from __future__ import annotations

import sys

#: Top-level modules of the ``bench`` extra (pyproject.toml) that the command line imports.
BENCH_EXTRA_MODULES = ("hdrh", "psutil", "matplotlib", "locust", "gevent", "numpy", "redis", "hiredis")


def main() -> int:
    try:
        from bench.cli import main as cli_main
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in BENCH_EXTRA_MODULES:
            raise
        print(
            f"chat-bench: the harness needs its own packages ({exc.name} is not installed): "
            "pip install 'chatbench[bench]' (or make install)",
            file=sys.stderr,
        )
        return 2
    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
