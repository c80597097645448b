"""What the swarm measures: a chat server it starts itself, or one already
running on this machine.

A target has a tiny life cycle -- ``start()`` returns the ``(host, port)``
to connect to, ``stop()`` undoes whatever ``start()`` did, ``pid`` is the
process to sample (or ``None``) and ``describe()`` says what it is for the
run's JSON.  New kinds (other servers, other protocols) register a factory
in :data:`TARGET_KINDS`.

``embedded``   this project's server (``python -m server``) as a subprocess
               on a free loopback port, with the given server options passed
               through (``--fanout direct``, ``--send-queue-bytes N``, ...);
               stopped with SIGTERM afterwards.
``HOST:PORT``  a server somebody else started.  Loopback only: the harness
               refuses to send load to any other machine.
"""

from __future__ import annotations

import collections
import ipaddress
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

#: Seconds an embedded server gets to start listening.
STARTUP_TIMEOUT_S = 15.0
#: Seconds it gets to shut down after SIGTERM before it is killed.
STOP_TIMEOUT_S = 10.0
#: Attempts at picking a free port (another process may take it first).
PORT_ATTEMPTS = 3


class TargetError(Exception):
    """The target cannot be used; the message says why, in plain words."""


class Target(Protocol):
    kind: str

    def start(self) -> tuple[str, int]: ...

    def stop(self) -> None: ...

    @property
    def pid(self) -> int | None: ...

    def describe(self) -> dict[str, Any]: ...


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _can_connect(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class EmbeddedTarget:
    """This project's server as a subprocess.  Usable as a context manager."""

    kind = "embedded"

    def __init__(self, server_args: Sequence[str] = (), host: str = "127.0.0.1") -> None:
        for arg in server_args:
            if arg.split("=")[0] in ("--host", "--port"):
                raise TargetError(f"{arg.split('=')[0]} is chosen by the harness for an embedded server")
        self.server_args = list(server_args)
        self.host = host
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=200)
        self._stderr_lines = 0
        self._reader: threading.Thread | None = None
        self.exit_code: int | None = None
        self.last_pid: int | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def command(self, port: int) -> list[str]:
        # Flood control off: the harness measures fan-out, not the limiter (it would
        # delay a fast sender's lines).  A later --log-level or --rate-limit wins.
        args = ["--log-level", "WARNING", "--rate-limit", "0", *self.server_args]
        return [sys.executable, "-m", "server", "--host", self.host, "--port", str(port), *args]

    def start(self) -> tuple[str, int]:
        last_error = "unknown error"
        for _ in range(PORT_ATTEMPTS):
            port = _free_port(self.host)
            proc = subprocess.Popen(
                self.command(port), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            self._proc = proc
            self._stderr.clear()
            self._reader = threading.Thread(target=self._drain_stderr, args=(proc,), daemon=True)
            self._reader.start()
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    break
                if _can_connect(self.host, port):
                    self.port = port
                    self.last_pid = proc.pid
                    return self.host, port
                time.sleep(0.05)
            if proc.poll() is None:
                self.stop()
                raise TargetError(f"embedded server did not listen within {STARTUP_TIMEOUT_S:.0f}s")
            self._reader.join(2)
            last_error = " | ".join(list(self._stderr)[-3:]) or f"exit code {proc.returncode}"
            self._proc = None
            if "cannot listen" not in last_error:
                break  # not a port race: retrying will not help
        raise TargetError(f"embedded server failed to start: {last_error}")

    def _drain_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            self._stderr_lines += 1
            self._stderr.append(raw.decode("utf-8", "replace").rstrip())

    def stop(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
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

    @property
    def stderr_tail(self) -> list[str]:
        return list(self._stderr)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "address": f"{self.host}:{self.port}",
            "pid": self.last_pid,
            "command": ["python", "-m", "server", *self.command(self.port)[3:]],
            "server_options": list(self.server_args),
            "stderr_lines": self._stderr_lines,
            "stderr_tail": list(self._stderr)[-10:],
            "exit_code": self.exit_code,
        }

    def __enter__(self) -> EmbeddedTarget:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ExternalTarget:
    """A server already running on this machine (``HOST:PORT``)."""

    kind = "external"

    def __init__(self, host: str, port: int, pid: int | None = None) -> None:
        check_loopback(host)
        self.host = host
        self.port = port
        self._pid = pid

    @property
    def pid(self) -> int | None:
        return self._pid

    def start(self) -> tuple[str, int]:
        if not _can_connect(self.host, self.port, timeout=2.0):
            raise TargetError(f"nothing accepts connections on {self.host}:{self.port}")
        return self.host, self.port

    def stop(self) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "address": f"{self.host}:{self.port}", "pid": self._pid}


def check_loopback(host: str) -> None:
    """Raise :class:`TargetError` unless every address of ``host`` is loopback."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise TargetError(f"cannot resolve {host!r}: {exc.strerror}") from exc
    addresses = {str(info[4][0]) for info in infos}
    outside = sorted(a for a in addresses if not ipaddress.ip_address(a.split("%")[0]).is_loopback)
    if outside or not addresses:
        raise TargetError(
            f"refusing target {host!r}: it resolves to {', '.join(outside) or 'nothing'}, which is not a "
            "loopback address; the swarm only sends load to this machine (127.0.0.0/8 or ::1)"
        )


def split_host_port(spec: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` -> (host, port)."""
    if spec.startswith("["):
        host, sep, rest = spec[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise TargetError(f"bad target {spec!r}: expected [IPV6]:PORT")
        port_text = rest[1:]
    else:
        host, sep, port_text = spec.rpartition(":")
        if not sep or not host:
            raise TargetError(f"bad target {spec!r}: expected 'embedded' or HOST:PORT")
    try:
        port = int(port_text)
    except ValueError:
        raise TargetError(f"bad port in target {spec!r}") from None
    if not 0 < port < 65536:
        raise TargetError(f"port out of range in target {spec!r}")
    return host, port


#: Named targets: name -> factory(server_args).  ngircd/miniircd adapters go here.
TARGET_KINDS: dict[str, Callable[[Sequence[str]], Target]] = {
    "embedded": lambda args: EmbeddedTarget(args),
}


def make_target(spec: str, server_args: Sequence[str] = (), server_pid: int | None = None) -> Target:
    """Build the target a ``--target`` value names."""
    factory = TARGET_KINDS.get(spec)
    if factory is not None:
        return factory(server_args)
    if server_args:
        raise TargetError(
            f"server options ({' '.join(server_args)}) only apply to a server the harness starts "
            f"({', '.join(TARGET_KINDS)}), not to {spec}"
        )
    host, port = split_host_port(spec)
    return ExternalTarget(host, port, server_pid)
