"""The one process launcher of the harness: a server run as a subprocess.

:class:`ProcessTarget` starts a server, learns where it listens, keeps the
tail of its stderr for error messages and stops it with SIGTERM.  It learns
the address one of two ways:

* it picks a free loopback port and passes it on the command line, then
  polls until the port accepts connections (servers that take a port
  option: the embedded server, ngircd, miniircd), or
* with :attr:`ProcessTarget.announces_address`, it runs the command as
  given (typically with ``--port 0``) and waits for the process to log
  ``listening on HOST:PORT`` on stderr (:class:`CommandTarget`: the gate's
  server under test and its calibration relay).

Every kind of target -- started here or somebody else's -- satisfies the
small :class:`Target` protocol the swarm drives.
"""

from __future__ import annotations

import collections
import os
import queue
import re
import shlex
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Self

from bench.results.schema import TargetInfo
from bench.wire.credentials import Logins

#: Seconds a started server gets to start listening (generous: a loaded
#: 2-core CI machine starts Python slowly).
STARTUP_TIMEOUT_S = 15.0
#: Seconds a server started by a whole command line gets: the gate starts
#: two such processes back to back on a loaded machine.
COMMAND_STARTUP_TIMEOUT_S = 20.0
#: Seconds it gets to shut down after SIGTERM before it is killed.
STOP_TIMEOUT_S = 10.0
#: Attempts at picking a free port (another process may take it first).
PORT_ATTEMPTS = 3
#: stderr lines kept for error messages and ``describe()``.
STDERR_TAIL_LINES = 200
#: Seconds between two connection attempts while a server starts.
POLL_INTERVAL_S = 0.05
#: What a server that picks its own port logs (``server.app`` does).
LISTENING = re.compile(r"listening on (\[[^\]]+\]|[^\s:]+):(\d+)")


class TargetError(Exception):
    """The target cannot be used; the message says why, in plain words."""


@dataclass(frozen=True)
class Security:
    """How a target the harness starts is secured (``--tls``, the logins):
    it serves TLS with a certificate the harness generates
    (:mod:`bench.targets.certs`), and lets in exactly the given logins.  A
    target somebody else started is secured as it is: the harness's clients
    only use these."""

    tls: bool = False
    logins: Logins | None = None

    def describe(self) -> str:
        """``tls``, ``tls, user bench (...)``, ``plain``: what a result records (never a password)."""
        parts = ["tls" if self.tls else "plain"]
        if self.logins is not None:
            parts.append(self.logins.describe())
        return ", ".join(parts)


#: A target started without TLS or logins.
PLAIN = Security()


class AlreadyStarted(RuntimeError):
    """``start()`` on a target that is running: a bug in the caller (the
    first server would be left running), never a user's mistake."""


def write_config(prefix: str, filename: str, text: str) -> tempfile.TemporaryDirectory[str]:
    """A fresh temporary directory holding one config file ``filename``, both
    readable by a server that drops root after reading them."""
    tmp = tempfile.TemporaryDirectory(prefix=prefix)
    os.chmod(tmp.name, 0o755)
    path = Path(tmp.name) / filename
    path.write_text(text)
    path.chmod(0o644)
    return tmp


class Target(Protocol):
    """``start()`` once, then ``stop()`` (which may be called any number of
    times); a second ``start()`` before ``stop()`` raises
    :class:`AlreadyStarted` rather than start a second server that nobody
    would stop.  ``with target:`` starts it; the address it listens on is
    what ``start()`` returned, also kept as ``address``."""

    kind: str
    protocol: str
    connect_batch: int | None
    max_connections: int | None

    def start(self) -> tuple[str, int]: ...

    def stop(self) -> None: ...

    @property
    def pid(self) -> int | None: ...

    def describe(self) -> TargetInfo: ...

    def node_addresses(self) -> list[tuple[str, int]] | None:
        """Once started, a target of several nodes that the harness may choose
        between: every node's address, in node order (the swarm connects
        client i to node i mod N); None for one address."""
        ...

    def refuses_rooms(self, rooms: int, per_client: int) -> str | None:
        """Why this target cannot hold a workload of ``rooms`` rooms with a
        client in up to ``per_client`` of them (a limit of its own), or None."""
        ...

    def enroll(self, accounts: Sequence[tuple[str, str]]) -> None:
        """Let these (name, password) accounts in: a server the harness
        started whose clients log in under their own names (ours, with an
        accounts file) gets them before they connect; others need nothing."""
        ...


def free_port(host: str) -> int:
    """A port nobody listens on right now (another process may take it)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def can_connect(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


#: Start-up lines of a server's stderr kept apart from the tail (where they
#: would scroll away): a server states its settings there.
STDERR_HEAD_LINES = 5


class ProcessTarget:
    """A server the harness starts as a subprocess and stops with SIGTERM.
    Subclasses say how to run it (:meth:`command`, and :meth:`prepare` for
    anything to write first).  Usable as a context manager."""

    kind = "process"
    #: What the server speaks (``bench.wire.PROTOCOLS``).
    protocol = "chat"
    #: Registrations in progress at once over all workers; None: the swarm's default.
    #: Servers with tiny listen backlogs need small batches.
    connect_batch: int | None = None
    #: Most client connections the server can hold, when it has a hard limit.
    max_connections: int | None = None
    #: Name in error messages.
    label = "server"
    #: stderr text meaning the port was taken meanwhile (then another port is tried).
    port_taken_markers: tuple[str, ...] = ("cannot listen",)
    #: The server picks its port and logs ``listening on HOST:PORT`` (see module doc).
    announces_address = False
    #: Seconds the server gets to start listening.
    startup_timeout = STARTUP_TIMEOUT_S
    #: The signal that asks the server to shut down cleanly (exit status 0).
    stop_signal = signal.SIGTERM
    #: TLS and logins it is started with (a subclass that can do them sets it).
    security = PLAIN

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._stderr_lines = 0
        #: the first lines the server logged (its start-up lines), kept whole
        self.stderr_head: list[str] = []
        self._reader: threading.Thread | None = None
        self._announced: queue.Queue[tuple[str, int] | None] = queue.Queue()
        self.exit_code: int | None = None
        self.last_pid: int | None = None
        #: Where it listens once started (what ``start()`` returned).
        self.address: tuple[str, int] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def node_addresses(self) -> list[tuple[str, int]] | None:
        return None  # one server, one address

    def refuses_rooms(self, rooms: int, per_client: int) -> str | None:
        """No limit on rooms (the peers' configs the harness writes set none)."""
        return None

    def enroll(self, accounts: Sequence[tuple[str, str]]) -> None:
        """Nothing by default: a server whose logins are not per client name."""

    def command(self, port: int) -> list[str]:
        raise NotImplementedError

    def pick_port(self) -> int:
        """The port for the next start attempt: a free one (a subclass that
        restarts on its old port returns that)."""
        return free_port(self.host)

    def prepare(self, port: int) -> None:
        """Called before each start attempt (e.g. to write a config file)."""

    def cleanup(self) -> None:
        """Called after the server stopped."""

    def start(self) -> tuple[str, int]:
        if self._proc is not None:
            raise AlreadyStarted(f"{self.label} is already running (pid {self._proc.pid}); stop() it first")
        self.address = self._start_announced() if self.announces_address else self._start_on_port()
        return self.address

    def _start_on_port(self) -> tuple[str, int]:
        last_error = "unknown error"
        for _ in range(PORT_ATTEMPTS):
            port = self.pick_port()
            self.prepare(port)
            proc = self._launch(port)
            if self._wait_connectable(proc, port):
                self.port = port
                self.last_pid = proc.pid
                return self.host, port
            if proc.poll() is None:
                self.stop()
                raise TargetError(f"{self.label} did not listen within {self.startup_timeout:.0f}s")
            last_error = self._reap(proc)
            if not any(marker in last_error for marker in self.port_taken_markers):
                break  # not a port race: retrying will not help
        raise TargetError(f"{self.label} failed to start: {last_error}")

    def _start_announced(self) -> tuple[str, int]:
        proc = self._launch(0)
        try:
            found = self._announced.get(timeout=self.startup_timeout)
        except queue.Empty:
            found = None
        if found is None:
            self.stop()
            raise TargetError(
                f"{self.label} did not log 'listening on HOST:PORT' within {self.startup_timeout:.0f}s "
                f"({shlex.join(self.command(0))}); its stderr:\n{self.stderr_text()}"
            )
        self.host, self.port = found
        self.last_pid = proc.pid
        return found

    def _launch(self, port: int) -> subprocess.Popen[bytes]:
        argv = self.command(port)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=dict(os.environ, PYTHONUNBUFFERED="1"),
            )
        except OSError as exc:
            raise TargetError(f"cannot start {self.label} ({shlex.join(argv)}): {exc}") from exc
        self._proc = proc
        self._stderr.clear()
        self.stderr_head = []
        self._announced = queue.Queue()
        self._reader = threading.Thread(
            target=self._drain_stderr, args=(proc,), name=f"stderr-{self.label}", daemon=True
        )
        self._reader.start()
        return proc

    def _wait_connectable(self, proc: subprocess.Popen[bytes], port: int) -> bool:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            if can_connect(self.host, port):
                return True
            time.sleep(POLL_INTERVAL_S)
        return False

    def _reap(self, proc: subprocess.Popen[bytes]) -> str:
        """A start attempt whose process exited: why, from its stderr."""
        if self._reader is not None:
            self._reader.join(2)
        self._proc = None
        self.cleanup()
        return " | ".join(list(self._stderr)[-3:]) or f"exit code {proc.returncode}"

    def _drain_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        announced = False
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            self._stderr_lines += 1
            self._stderr.append(line)
            if len(self.stderr_head) < STDERR_HEAD_LINES:
                self.stderr_head.append(line)
            if not announced and (m := LISTENING.search(line)):
                announced = True
                self._announced.put((m[1].strip("[]"), int(m[2])))
        if not announced:
            self._announced.put(None)  # exited (or closed stderr) before listening

    def stop(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(self.stop_signal)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.exit_code = proc.returncode
        if self._reader is not None:
            self._reader.join(2)
        if proc.stderr is not None:
            proc.stderr.close()
        self._proc = None
        self.cleanup()

    @property
    def stderr_tail(self) -> list[str]:
        return list(self._stderr)

    def stderr_text(self) -> str:
        return "\n".join(list(self._stderr)[-40:]) or "(nothing)"

    def describe(self) -> TargetInfo:
        return {
            "kind": self.kind,
            "protocol": self.protocol,
            "address": f"{self.host}:{self.port}",
            "pid": self.last_pid,
            "command": self.command(self.port),
            "stderr_lines": self._stderr_lines,
            "stderr_tail": list(self._stderr)[-10:],
            "exit_code": self.exit_code,
            "security": self.security.describe(),
        }

    def __enter__(self) -> Self:
        """Starts it: ``with EmbeddedTarget() as t:`` runs a server, at ``t.address``."""
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class CommandTarget(ProcessTarget):
    """A server started with a command line given whole, which picks its own
    port and logs ``listening on HOST:PORT`` on stderr (the gate's
    ``--server-command``, the calibration relay)."""

    kind = "command"
    announces_address = True
    startup_timeout = COMMAND_STARTUP_TIMEOUT_S

    def __init__(self, argv: Sequence[str], label: str = "server", protocol: str = "chat") -> None:
        super().__init__()
        self.argv = list(argv)
        self.label = label
        self.protocol = protocol

    def command(self, port: int) -> list[str]:
        return list(self.argv)
