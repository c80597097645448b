"""Locust entry point for WebSocket users: ``locust -f bench/locustfile_ws.py
--host ws://127.0.0.1:8080/ws`` against ``chat-server --ws-port 8080``.

The same users, options (``--chat-rate``, ``--chat-payload``...), ``FANOUT
broadcast`` rows and exact HDR percentiles as ``bench/locustfile.py``, over
WebSocket (see docs/locust.md).  A separate file, so a TCP run never starts
WebSocket users by accident.
"""

from __future__ import annotations

import sys
from pathlib import Path

from locust import events

try:
    import bench  # noqa: F401  (installed, or run from the repository root)
except ImportError:  # run from elsewhere without installing: use this checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loadtest.users import install
from bench.loadtest.wsusers import WebSocketChatUser, parse_ws_host

__all__ = ["WebSocketChatUser"]

install(events, host_parser=parse_ws_host)
