"""Other people's chat servers, spoken to over IRC: ngIRCd and miniircd.

Each is a :class:`bench.targets.base.ProcessTarget` with what it needs to
run on a free loopback port and without limits that would distort a
benchmark (see each class).
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.results.schema import TargetInfo
from bench.targets import certs
from bench.targets.base import PLAIN, ProcessTarget, Security, TargetError, write_config
from bench.targets.packages import Package

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

#: ngircd's [SSL] section with ``--tls``: TLS on the clients' port only
#: (no plaintext ``Ports`` in [Global]), the harness's certificate.
NGIRCD_SSL_CONFIG = """\
[SSL]
CertFile = {cert}
KeyFile = {key}
Ports = {port}
"""

#: ngircd's flood penalty without MaxPenaltyTime = 0: what one sender can
#: sustain (messages/s); the swarm then spreads the rate over more senders.
NGIRCD_PENALTY_RATE_PER_SENDER = 1.0


#: ngIRCd's binary and its Debian package.
NGIRCD = Package("ngircd", debian="ngircd")
#: miniircd's module and its PyPI package (installed into the harness's Python).
MINIIRCD = Package("miniircd", pypi="miniircd")


def find_ngircd() -> str | None:
    """Path of the ngircd binary (``/usr/sbin`` is searched even when not on PATH)."""
    return NGIRCD.find()


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

    def __init__(self, server_args: Sequence[str] = (), host: str = "127.0.0.1", security: Security = PLAIN) -> None:
        if server_args:
            raise TargetError(f"server options ({' '.join(server_args)}) only apply to the embedded server")
        binary = NGIRCD.find()
        if binary is None:
            raise TargetError(NGIRCD.missing())
        super().__init__(host)
        self.binary = binary
        self.security = security
        self.certificate = certs.issue("ngircd") if security.tls else None
        self.password = self.server_password(security)
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

    @staticmethod
    def server_password(security: Security) -> str | None:
        """IRC's one server password (``PASS``): every login's, which must be the same."""
        if security.logins is None:
            return None
        passwords = {a.password for a in security.logins.accounts}
        if len(passwords) != 1:
            raise TargetError("ngircd has one server password (PASS): give every login the same password")
        return passwords.pop()

    def prepare(self, port: int) -> None:
        self.cleanup()
        penalty = "MaxPenaltyTime = 0\n" if self.penalty_disabled else ""
        text = NGIRCD_BASE_CONFIG.format(host=self.host, port=port, penalty=penalty)
        if self.password is not None:  # in [Global]: PASS before NICK/USER
            text = text.replace("MotdPhrase = chatbench\n", f"MotdPhrase = chatbench\nPassword = {self.password}\n")
        if self.certificate is not None:  # the clients' port speaks TLS, no plaintext port
            text = text.replace(f"Ports = {port}\n", "")
            cert, key = self.certificate.cert_file, self.certificate.key_file
            text += NGIRCD_SSL_CONFIG.format(cert=cert, key=key, port=port)
        self.config_text = text
        self._dir = write_config("chatbench-ngircd-", "ngircd.conf", self.config_text)

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

    def describe(self) -> TargetInfo:
        doc = super().describe()
        doc["command"] = [self.binary, "--nodaemon", "--config", "ngircd.conf"]
        doc["version"] = self.version()
        doc["flood_control"] = self.flood_control
        text = self.config_text
        if self.password is not None:
            text = text.replace(self.password, "***")  # a result never holds a password
        doc["config"] = text.splitlines()
        return doc


#: miniircd's select() loop cannot watch descriptors >= FD_SETSIZE (1024);
#: 0-2 are stdio and one is the listening socket.
MINIIRCD_MAX_CONNECTIONS = 1020


def miniircd_installed() -> bool:
    return MINIIRCD.installed


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
        if not MINIIRCD.installed:
            raise TargetError(f"{MINIIRCD.missing()}; this Python is {sys.executable}")
        super().__init__(host)

    def command(self, port: int) -> list[str]:
        cmd = [sys.executable, "-m", "miniircd", "--listen", self.host, "--ports", str(port)]
        if os.geteuid() == 0:
            cmd += ["--setuid", "nobody"]  # miniircd refuses to run as root otherwise
        return cmd

    def describe(self) -> TargetInfo:
        doc = super().describe()
        doc["command"] = ["python", *doc["command"][1:]]
        try:
            doc["version"] = "miniircd " + importlib.metadata.version("miniircd")
        except importlib.metadata.PackageNotFoundError:
            doc["version"] = None
        doc["flood_control"] = self.flood_control
        return doc
