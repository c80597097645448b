"""The Locust user for WebSocket: :class:`ChatClientUser`'s traffic and
measurements (``FANOUT broadcast`` rows, exact HDR percentiles) over the
server's ``--ws-port`` (``/ws``).  ``bench/locustfile_ws.py`` loads it."""

from __future__ import annotations

from urllib.parse import urlsplit

from bench.loadtest.users import ChatClientUser
from bench.wire.ws_adapter import WS_PATH, mask_text

#: ``--host`` when none is given: the port the README starts ``--ws-port`` on.
DEFAULT_WS_HOST = "ws://127.0.0.1:8080/ws"
#: Port of a ``ws://HOST`` host without one (the HTTP default).
DEFAULT_WS_PORT = 80


def parse_ws_host(host: str | None) -> tuple[str, int]:
    """``ws://HOST:PORT/ws`` to an address tuple; ``ValueError`` saying what
    is wrong otherwise (another scheme or path, no host)."""
    text = (host or DEFAULT_WS_HOST).strip()
    parts = urlsplit(text if "://" in text else "ws://" + text)
    if parts.scheme != "ws":
        raise ValueError(f"host {host!r}: use ws://HOST:PORT{WS_PATH} (wss:// is not supported)")
    if parts.path not in ("", WS_PATH):
        raise ValueError(f"host {host!r}: the chat server's WebSocket path is {WS_PATH}")
    if not parts.hostname:
        raise ValueError(f"host {host!r} has no host name; use ws://HOST:PORT{WS_PATH}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"host {host!r}: {exc}") from exc
    return parts.hostname, port if port is not None else DEFAULT_WS_PORT


class WebSocketChatUser(ChatClientUser):
    """A chat user over WebSocket: every line it sends is one masked text frame."""

    host = DEFAULT_WS_HOST
    wire_protocol = "ws"

    def target_address(self) -> tuple[str, int]:
        return parse_ws_host(self.host)

    def send_bytes(self, data: bytes, intended_ns: int | None = None) -> bool:
        return super().send_bytes(mask_text(data), intended_ns)
