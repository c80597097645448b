"""Helpers for driving the terminal client end to end: the client as a
subprocess with piped stdio, and a bare-socket peer to talk to it."""

from __future__ import annotations

import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from server import protocol
from tests.paths import REPO

#: Generous: the machine is shared and noisy; these only bound a failure.
TIMEOUT = 10.0


class ClientProcess:
    """``python -m client`` with piped stdin/stdout/stderr; stdout is read by
    a thread so tests can wait for a line with a timeout."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "client", *args],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._new: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.stderr = ""

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._new.put(line.rstrip("\n"))
        self._new.put(None)

    def expect(self, wanted: str | Callable[[str], bool], timeout: float = TIMEOUT) -> str:
        """Wait for an output line equal to ``wanted`` (or matching it) and return it."""
        match = wanted if callable(wanted) else (lambda line: line == wanted)
        for line in self.lines:
            if match(line):
                return line
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._new.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if match(line):
                return line
        raise AssertionError(f"client never printed {wanted!r}; output so far: {self.lines}")

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def wait(self, timeout: float = TIMEOUT, *, keep_stdin: bool = False) -> int:
        """Exit code; collects the rest of stdout and all of stderr.  Closes
        stdin first (EOF) unless ``keep_stdin``."""
        if not keep_stdin and self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        while True:
            try:
                line = self._new.get_nowait()
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(TIMEOUT)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass


class Peer:
    """A bare-socket chat participant, for watching what the client sends."""

    def __init__(self, address: tuple[str, int], name: str) -> None:
        self.sock = socket.create_connection(address, timeout=TIMEOUT)
        self.decoder = protocol.LineDecoder(protocol.DEFAULT_MAX_LINE_BYTES + protocol.SERVER_LINE_OVERHEAD)
        self.seen: list[str] = []
        self._pending: list[str] = []
        self.expect(lambda e: isinstance(e, protocol.Prompt))
        self.sock.sendall(protocol.encode_line(name))
        self.expect(lambda e: isinstance(e, protocol.Welcome))

    def say(self, text: str) -> None:
        self.sock.sendall(protocol.encode_say(text))

    def expect(self, match: Callable[[protocol.ServerEvent], bool], timeout: float = TIMEOUT) -> protocol.ServerEvent:
        deadline = time.monotonic() + timeout
        while True:
            while self._pending:
                text = self._pending.pop(0)
                self.seen.append(text)
                event = protocol.parse_server_line(text)
                if match(event):
                    return event
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"peer never got the expected line; saw {self.seen}")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                raise AssertionError(f"server closed the peer's connection; saw {self.seen}")
            self._pending.extend(protocol.decode_text(line) for line in self.decoder.feed(data))

    def close(self) -> None:
        self.sock.close()


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port
