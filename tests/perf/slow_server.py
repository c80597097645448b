"""A deliberately slowed chat server, for proving the fan-out gate catches a
slowdown.  ``python tests/perf/slow_server.py FACTOR [server options]`` runs
``python -m server`` with every per-recipient send in ``Hub.broadcast``
taking FACTOR times as long (the extra time is spent spinning, holding the
GIL, as slower Python code would)."""

from __future__ import annotations

import sys
import time

from server.__main__ import main
from server.hub import Hub
from server.session import Session


def slow_broadcast(factor: float) -> None:
    def broadcast(self: Hub, data: bytes, exclude: Session | None = None) -> None:
        clock = time.perf_counter
        for member in self._members:
            if member is not exclude:
                start = clock()
                member.send(data)
                until = clock() + (clock() - start) * (factor - 1.0)
                while clock() < until:
                    pass

    Hub.broadcast = broadcast  # type: ignore[method-assign]


if __name__ == "__main__":
    slow_broadcast(float(sys.argv[1]))
    sys.exit(main(sys.argv[2:]))
