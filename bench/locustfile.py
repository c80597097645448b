"""Locust entry point for the chat server: ``locust -f bench/locustfile.py``.

Host: ``--host tcp://127.0.0.1:8000`` (default).  Users: ``ChatClientUser``
sends measured messages (``--chat-rate`` per second, ``--chat-payload``
bytes) and reports every delivery it receives as a ``FANOUT broadcast``
request; exact HDR percentiles of those are printed at the end and saved as
``<csv-prefix>_fanout_hdr.json``.  ``--chat-step-load`` turns on the step-load
shape.  See docs/locust.md for every way to run it, and
``locust -f bench/locustfile.py --help`` (section "chatbench") for the options.
"""

from __future__ import annotations

import sys
from pathlib import Path

from locust import events

try:
    import bench  # noqa: F401  (installed, or run from the repository root)
except ImportError:  # run from elsewhere without installing: use this checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loadtest.shape import StepLoadShape
from bench.loadtest.users import ChatClientUser, ChatUser, install

__all__ = ["ChatClientUser", "ChatUser", "StepLoadShape"]

install(events)

if __name__ == "__main__":
    # Locust prints --help before it imports the locustfile (locust issue
    # #2917), so `locust -f bench/locustfile.py --help` cannot list the
    # --chat-* options; `python bench/locustfile.py` prints Locust's help
    # with them included.
    from locust.argument_parser import get_parser

    get_parser().parse_args(["--help"])
