"""The gate's calibration relay: the least a threaded Python chat relay does.

The fan-out gate (:mod:`bench.gate`) measures the server against this relay
in the same run and gates on the ratio of their times.  Run on its own as
``python -m bench.targets.relay --host 127.0.0.1 --port 0`` (it logs
``listening on HOST:PORT``); :func:`relay_target` gives the
:class:`~bench.targets.base.CommandTarget` that starts it that way.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import threading
from collections.abc import Callable, Iterable

from bench.targets.base import CommandTarget
from server import protocol

log = logging.getLogger(__name__)

#: Bytes one ``recv`` may return: a whole burst of the gate's lines per call.
RECV_BYTES = 65536
#: Pending connections the listener queues: the gate connects ~50 clients
#: back to back.
LISTEN_BACKLOG = 1024

Member = tuple[socket.socket, str]


def accept_forever(listener: socket.socket, session: Callable[[socket.socket], None]) -> None:
    """Accept connections for ever, each served by ``session`` in a thread of its own."""
    while True:
        sock, _ = listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=session, args=(sock,), daemon=True).start()


Registered = tuple[str, list[bytes], protocol.LineDecoder]


def send_welcome(sock: socket.socket, name: str, others: Iterable[str]) -> None:
    """The welcome line: ``name`` and everybody already online, sorted as the server sorts."""
    sock.sendall(protocol.encode_welcome(name, sorted([*others, name], key=str.casefold)))


def read_name(sock: socket.socket) -> Registered | None:
    """Prompt and read the name line: the name, the lines that came after it
    and the connection's line decoder, or ``None`` when the client left first."""
    decoder = protocol.LineDecoder(protocol.DEFAULT_MAX_LINE_BYTES, discard_oversized=True)
    sock.sendall(protocol.encode_prompt())
    lines: list[bytes] = []
    while not lines:
        data = sock.recv(RECV_BYTES)
        if not data:
            return None
        lines = decoder.feed(data)
    return protocol.decode_text(lines[0]).strip(), lines[1:], decoder


class CalibrationRelay:
    """The least a threaded Python chat relay does: prompt, welcome, join
    notices, and every chat line re-framed as ``NAME: TEXT`` and sent with
    one blocking ``sendall`` per receiver, in the sender's reader thread.
    No commands, no limits, no queues: the reference the server's fan-out is
    measured against.  Bytes on the wire are the server's bytes, encoded by
    the same protocol module."""

    def __init__(self, listener: socket.socket) -> None:
        self._listener = listener
        self._lock = threading.Lock()
        self._members: tuple[Member, ...] = ()

    def serve_forever(self) -> None:
        accept_forever(self._listener, self._session)

    def _session(self, sock: socket.socket) -> None:
        try:
            if (registered := read_name(sock)) is None:
                return
            name, lines, decoder = registered
            with self._lock:
                send_welcome(sock, name, (n for _, n in self._members))
                others = self._members
                self._members = (*self._members, (sock, name))
            self._send(protocol.encode_joined(name), others)
            self._relay(sock, name, lines)
            while data := sock.recv(RECV_BYTES):
                self._relay(sock, name, decoder.feed(data))
        except OSError:
            pass
        finally:
            with self._lock:
                self._members = tuple(m for m in self._members if m[0] is not sock)
            sock.close()

    def _relay(self, sock: socket.socket, name: str, lines: list[bytes]) -> None:
        if lines:
            data = b"".join(protocol.encode_message(name, protocol.decode_text(line)) for line in lines)
            self._send(data, tuple(m for m in self._members if m[0] is not sock))

    @staticmethod
    def _send(data: bytes, members: tuple[Member, ...]) -> None:
        for other, _ in members:
            try:
                other.sendall(data)
            except OSError:
                pass


def run_relay(host: str, port: int) -> int:
    """Serve until killed; logs ``listening on HOST:PORT``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        listener = socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", host, port, exc.strerror or exc)
        return 2
    bound_host, bound_port = listener.getsockname()[:2]
    log.info("listening on %s", f"[{bound_host}]:{bound_port}" if ":" in bound_host else f"{bound_host}:{bound_port}")
    try:
        CalibrationRelay(listener).serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
    return 0


def relay_argv() -> list[str]:
    return [sys.executable, "-m", "bench.targets.relay", "--host", "127.0.0.1", "--port", "0"]


def relay_target() -> CommandTarget:
    """The calibration relay as a target the gate starts and stops."""
    return CommandTarget(relay_argv(), "calibration relay")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.targets.relay",
        description="The fan-out gate's calibration relay (started by the gate; serves until killed).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="listen address")
    parser.add_argument("--port", type=int, default=0, help="port; 0 picks one (logged on stderr)")
    args = parser.parse_args(argv)
    return run_relay(args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
