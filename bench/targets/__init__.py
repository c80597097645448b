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
``ngircd``     ngIRCd (Debian package ``ngircd``), spoken to over IRC, with
               a config the harness writes (:class:`NgircdTarget`).
``miniircd``   miniircd (PyPI), spoken to over IRC (:class:`MiniircdTarget`).
``HOST:PORT``  a server somebody else started, speaking ``--protocol chat``
               (default) or ``irc``.  Loopback only: the harness refuses to
               send load to any other machine.

Each target says which protocol it speaks (``protocol``, an adapter name in
:mod:`bench.wire.adapters`), how many registrations may be in flight at once
(``connect_batch``, small for servers with tiny listen backlogs) and, if it
has one, its hard connection limit (``max_connections``).
"""

from __future__ import annotations

import collections
import functools
import importlib.metadata
import importlib.util
import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, Self

from bench.wire import PROTOCOLS

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
    protocol: str
    connect_batch: int | None
    max_connections: int | None

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


class ProcessTarget:
    """A server the harness starts as a subprocess on a free loopback port and
    stops with SIGTERM.  Subclasses say how to run it (:meth:`command`, and
    :meth:`prepare` for anything to write first).  Usable as a context manager."""

    kind = "process"
    #: What the server speaks (:data:`bench.wire.PROTOCOLS`).
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

    def __init__(self, host: str = "127.0.0.1") -> None:
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
        raise NotImplementedError

    def prepare(self, port: int) -> None:
        """Called before each start attempt (e.g. to write a config file)."""

    def cleanup(self) -> None:
        """Called after the server stopped."""

    def start(self) -> tuple[str, int]:
        last_error = "unknown error"
        for _ in range(PORT_ATTEMPTS):
            port = _free_port(self.host)
            self.prepare(port)
            proc = subprocess.Popen(
                self.command(port),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
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
                raise TargetError(f"{self.label} did not listen within {STARTUP_TIMEOUT_S:.0f}s")
            self._reader.join(2)
            last_error = " | ".join(list(self._stderr)[-3:]) or f"exit code {proc.returncode}"
            self._proc = None
            self.cleanup()
            if not any(marker in last_error for marker in self.port_taken_markers):
                break  # not a port race: retrying will not help
        raise TargetError(f"{self.label} failed to start: {last_error}")

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
        self.cleanup()

    @property
    def stderr_tail(self) -> list[str]:
        return list(self._stderr)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "protocol": self.protocol,
            "address": f"{self.host}:{self.port}",
            "pid": self.last_pid,
            "command": self.command(self.port),
            "stderr_lines": self._stderr_lines,
            "stderr_tail": list(self._stderr)[-10:],
            "exit_code": self.exit_code,
        }

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EmbeddedTarget(ProcessTarget):
    """This project's server as a subprocess."""

    kind = "embedded"
    protocol = "chat"
    label = "embedded server"

    def __init__(self, server_args: Sequence[str] = (), host: str = "127.0.0.1") -> None:
        for arg in server_args:
            if arg.split("=")[0] in ("--host", "--port"):
                raise TargetError(f"{arg.split('=')[0]} is chosen by the harness for an embedded server")
        super().__init__(host)
        self.server_args = list(server_args)

    def command(self, port: int) -> list[str]:
        # Flood control off: the harness measures fan-out, not the limiter (it would
        # delay a fast sender's lines).  A later --log-level or --rate-limit wins.
        args = ["--log-level", "WARNING", "--rate-limit", "0", *self.server_args]
        return [sys.executable, "-m", "server", "--host", self.host, "--port", str(port), *args]

    def describe(self) -> dict[str, Any]:
        doc = super().describe()
        doc["command"] = ["python", "-m", "server", *self.command(self.port)[3:]]
        doc["server_options"] = list(self.server_args)
        return doc


# ---------------------------------------------------------------------------
# peers: other people's chat servers, spoken to over IRC
# ---------------------------------------------------------------------------

#: ngircd's settings for a benchmark on loopback (see ``ngircd.conf(5)``).
#: No per-IP or total connection limit, no PAM/DNS/ident look-ups (each would
#: delay every login), nicks as long as the harness's names.
NGIRCD_BASE_CONFIG = """\
[Global]
Name = chatbench.localhost
Info = chatbench peer server (config written by the harness)
AdminInfo1 = chatbench harness
AdminInfo2 = loopback benchmark
AdminEMail = nobody@localhost
Listen = {host}
Ports = {port}
MotdPhrase = chatbench

[Limits]
MaxConnections = 0
MaxConnectionsIP = 0
MaxJoins = 0
MaxNickLength = 31
{penalty}
[Options]
PAM = no
DNS = no
Ident = no
"""

#: ngircd's flood penalty without MaxPenaltyTime = 0: what one sender can
#: sustain (messages/s); the swarm then spreads the rate over more senders.
NGIRCD_PENALTY_RATE_PER_SENDER = 1.0


def find_ngircd() -> str | None:
    """Path of the ngircd binary (``/usr/sbin`` is searched even when not on PATH)."""
    path = os.environ.get("PATH", "") + os.pathsep + os.pathsep.join(("/usr/sbin", "/usr/local/sbin", "/sbin"))
    return shutil.which("ngircd", path=path)


@functools.lru_cache(maxsize=4)
def ngircd_supports_max_penalty_time(binary: str) -> bool:
    """Whether this ngircd understands ``MaxPenaltyTime`` (ngIRCd 26 and later):
    its ``--configtest`` dump echoes the setting back."""
    with tempfile.TemporaryDirectory(prefix="chatbench-ngircd-") as tmp:
        conf = Path(tmp) / "ngircd.conf"
        conf.write_text(NGIRCD_BASE_CONFIG.format(host="127.0.0.1", port=1, penalty="MaxPenaltyTime = 0\n"))
        try:
            out = subprocess.run(
                [binary, "--configtest", "--config", str(conf)],
                capture_output=True,
                text=True,
                timeout=20,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.SubprocessError):
            return False
    return "MaxPenaltyTime = 0" in out.stdout + out.stderr


class NgircdTarget(ProcessTarget):
    """ngIRCd (C, single-threaded, epoll) from the Debian package ``ngircd``,
    with a config file the harness writes: loopback only, a free port, no
    connection limits, no PAM/DNS/ident, and -- where the installed version
    supports it -- ``MaxPenaltyTime = 0`` to turn the flood penalty off (it
    otherwise holds one sender to a few messages per second; then the rate
    has to be spread over many senders, which :attr:`flood_control` says).
    Started as ``ngircd --nodaemon --config FILE``; run as root it switches
    to ``nobody`` by itself."""

    kind = "ngircd"
    protocol = "irc"
    label = "ngircd"
    connect_batch: int | None = 8  # listen backlog 10
    port_taken_markers = ("Address already in use", "Can't bind", "isn't listening")

    def __init__(self, server_args: Sequence[str] = (), host: str = "127.0.0.1") -> None:
        if server_args:
            raise TargetError(f"server options ({' '.join(server_args)}) only apply to the embedded server")
        binary = find_ngircd()
        if binary is None:
            raise TargetError(
                "ngircd is not installed (Debian package `ngircd`: `make peers` installs it, or apt-get install ngircd)"
            )
        super().__init__(host)
        self.binary = binary
        self.penalty_disabled = ngircd_supports_max_penalty_time(binary)
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self.config_text = ""

    @property
    def flood_control(self) -> str:
        if self.penalty_disabled:
            return "MaxPenaltyTime = 0 (flood penalty off)"
        return (
            f"penalty on (this ngircd has no MaxPenaltyTime): spread the rate over senders, "
            f"<= {NGIRCD_PENALTY_RATE_PER_SENDER:g} msg/s each"
        )

    @property
    def max_rate_per_sender(self) -> float | None:
        """Messages/s one sender can sustain, when the server limits it."""
        return None if self.penalty_disabled else NGIRCD_PENALTY_RATE_PER_SENDER

    def prepare(self, port: int) -> None:
        self.cleanup()
        self._dir = tempfile.TemporaryDirectory(prefix="chatbench-ngircd-")
        os.chmod(self._dir.name, 0o755)  # readable after ngircd drops root
        penalty = "MaxPenaltyTime = 0\n" if self.penalty_disabled else ""
        self.config_text = NGIRCD_BASE_CONFIG.format(host=self.host, port=port, penalty=penalty)
        path = Path(self._dir.name) / "ngircd.conf"
        path.write_text(self.config_text)
        path.chmod(0o644)

    @property
    def config_path(self) -> str:
        assert self._dir is not None
        return str(Path(self._dir.name) / "ngircd.conf")

    def command(self, port: int) -> list[str]:
        conf = self.config_path if self._dir is not None else "FILE"
        return [self.binary, "--nodaemon", "--config", conf]

    def cleanup(self) -> None:
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def version(self) -> str | None:
        try:
            out = subprocess.run([self.binary, "--version"], capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        return out.splitlines()[0].strip() if out else None

    def describe(self) -> dict[str, Any]:
        doc = super().describe()
        doc["command"] = [self.binary, "--nodaemon", "--config", "ngircd.conf"]
        doc["version"] = self.version()
        doc["flood_control"] = self.flood_control
        doc["config"] = self.config_text.splitlines()
        return doc


#: miniircd's select() loop cannot watch descriptors >= FD_SETSIZE (1024);
#: 0-2 are stdio and one is the listening socket.
MINIIRCD_MAX_CONNECTIONS = 1020


def miniircd_installed() -> bool:
    return importlib.util.find_spec("miniircd") is not None


class MiniircdTarget(ProcessTarget):
    """miniircd (pure Python, one thread, ``select()``) from PyPI, run with
    this Python as ``python -m miniircd --listen HOST --ports PORT`` (plus
    ``--setuid nobody`` as root, which it insists on).  It has no flood
    control.  Its listen backlog is 5 and its select() loop fails past ~1,020
    descriptors."""

    kind = "miniircd"
    protocol = "irc"
    label = "miniircd"
    connect_batch: int | None = 4  # listen backlog 5
    max_connections: int | None = MINIIRCD_MAX_CONNECTIONS
    port_taken_markers = ("Could not bind",)
    flood_control = "none (miniircd has no flood control)"

    def __init__(self, server_args: Sequence[str] = (), host: str = "127.0.0.1") -> None:
        if server_args:
            raise TargetError(f"server options ({' '.join(server_args)}) only apply to the embedded server")
        if not miniircd_installed():
            raise TargetError(
                f"miniircd is not installed for {sys.executable} (PyPI package `miniircd`: "
                "`make peers` installs it, or pip install miniircd)"
            )
        super().__init__(host)

    def command(self, port: int) -> list[str]:
        cmd = [sys.executable, "-m", "miniircd", "--listen", self.host, "--ports", str(port)]
        if os.geteuid() == 0:
            cmd += ["--setuid", "nobody"]  # miniircd refuses to run as root otherwise
        return cmd

    def describe(self) -> dict[str, Any]:
        doc = super().describe()
        doc["command"] = ["python", *doc["command"][1:]]
        try:
            doc["version"] = "miniircd " + importlib.metadata.version("miniircd")
        except importlib.metadata.PackageNotFoundError:
            doc["version"] = None
        doc["flood_control"] = self.flood_control
        return doc


class ExternalTarget:
    """A server already running on this machine (``HOST:PORT``)."""

    kind = "external"
    connect_batch: int | None = None
    max_connections: int | None = None

    def __init__(self, host: str, port: int, pid: int | None = None, protocol: str = "chat") -> None:
        check_loopback(host)
        if protocol not in PROTOCOLS:
            raise TargetError(f"unknown protocol {protocol!r} (choose from {', '.join(PROTOCOLS)})")
        self.host = host
        self.port = port
        self._pid = pid
        self.protocol = protocol

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
        return {"kind": self.kind, "protocol": self.protocol, "address": f"{self.host}:{self.port}", "pid": self._pid}


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


#: Named targets: name -> factory(server_args).
TARGET_KINDS: dict[str, Callable[[Sequence[str]], Target]] = {
    "embedded": lambda args: EmbeddedTarget(args),
    "ngircd": lambda args: NgircdTarget(args),
    "miniircd": lambda args: MiniircdTarget(args),
}
#: What each named target speaks.
TARGET_PROTOCOLS: dict[str, str] = {"embedded": "chat", "ngircd": "irc", "miniircd": "irc"}


def target_protocol(spec: str, protocol: str | None = None) -> str:
    """The protocol a ``--target`` speaks: fixed for a named target (a
    different ``--protocol`` is an error), ``protocol`` (default ``chat``)
    for HOST:PORT."""
    if protocol is not None and protocol not in PROTOCOLS:
        raise TargetError(f"unknown protocol {protocol!r} (choose from {', '.join(PROTOCOLS)})")
    fixed = TARGET_PROTOCOLS.get(spec)
    if fixed is not None:
        if protocol is not None and protocol != fixed:
            raise TargetError(f"--protocol {protocol} does not apply: target {spec} speaks {fixed}")
        return fixed
    return protocol or "chat"


def make_target(
    spec: str, server_args: Sequence[str] = (), server_pid: int | None = None, protocol: str | None = None
) -> Target:
    """Build the target a ``--target`` value names."""
    proto = target_protocol(spec, protocol)
    factory = TARGET_KINDS.get(spec)
    if factory is not None:
        return factory(server_args)
    if server_args:
        raise TargetError(
            f"server options ({' '.join(server_args)}) only apply to a server the harness starts "
            f"({', '.join(TARGET_KINDS)}), not to {spec}"
        )
    host, port = split_host_port(spec)
    return ExternalTarget(host, port, server_pid, proto)
