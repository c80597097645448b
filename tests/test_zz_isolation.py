"""Runs last: nothing in the suite leaked gevent's monkey-patching (Locust's)
into the test process, where the threaded server runs in-process."""

from __future__ import annotations

import sys


def test_gevent_monkey_patching_did_not_leak_into_the_test_process() -> None:
    if "gevent.monkey" in sys.modules:
        from gevent import monkey

        assert not monkey.is_module_patched("socket")
        assert not monkey.is_module_patched("threading")
    import socket
    import threading

    assert socket.socket.__module__ == "socket"
    assert threading.Lock.__module__ in ("_thread", "threading")
