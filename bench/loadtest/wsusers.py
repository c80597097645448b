"""The Locust user for WebSocket: :class:`ChatClientUser`'s traffic and
measurements (``FANOUT broadcast`` rows, exact HDR percentiles) over the
server's ``--ws-port`` (``/ws``).  ``bench/locustfile_ws.py`` loads it."""

from __future__ import annotations

from bench.loadtest.users import ChatClientUser
from bench.wire.ws_adapter import mask_text, parse_ws_url
from server import protocol

#: ``--host`` when none is given: the port the README starts ``--ws-port`` on.
DEFAULT_WS_HOST = "ws://127.0.0.1:8080/ws"


def parse_ws_host(host: str | None) -> tuple[str, int]:
    """Locust's ``--host`` (``ws://HOST:PORT/ws``) to an address tuple."""
    return parse_ws_url(host or DEFAULT_WS_HOST)


class WebSocketChatUser(ChatClientUser):
    """A chat user over WebSocket: every line it sends is one masked text frame."""

    host = DEFAULT_WS_HOST
    wire_protocol = "ws"

    def target_address(self) -> tuple[str, int]:
        return parse_ws_host(self.host)

    def send_line(self, line: str) -> bool:
        # Chat and probes are framed by the ws adapter (encode_message); a raw
        # protocol line (a command) is framed here.
        return self.send_bytes(mask_text(protocol.encode_line(line)))
