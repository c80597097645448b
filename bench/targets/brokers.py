"""Pub/sub brokers the harness starts itself: Redis, NATS and Mosquitto (MQTT).

Each runs from its Debian package on a free loopback port with a config file
the harness writes, its log on stderr (kept in the run document like the other
peers'), and is stopped with SIGTERM after the run.  Settings that would
distort a fan-out benchmark are set for one in the config, each with a comment
(:data:`REDIS_CONFIG`, :data:`NATS_CONFIG`, :data:`MOSQUITTO_CONFIG`); extra
server options (``--server-arg``) are appended as config lines, so a test or a
user can put a limit back (``client-output-buffer-limit pubsub 64kb 0 0``).

With ``--tls`` each serves TLS on that port with a certificate the harness
generates (:mod:`bench.targets.certs`), and with logins it lets in only
those (:meth:`BrokerTarget.security_config`): Redis ``tls-port`` (plaintext
``port 0``) and ACL users, Mosquitto the listener's ``certfile``/``keyfile``
and a ``password_file`` (``mosquitto_passwd``), NATS a ``tls`` block and an
``authorization`` block.

``redis://HOST:PORT``, ``nats://HOST:PORT`` and ``mqtt://HOST:PORT`` name a
broker somebody else started (loopback only; the schemes are the registry's,
:mod:`bench.targets.registry`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from bench.results.schema import TargetInfo
from bench.targets import certs
from bench.targets.base import PLAIN, ProcessTarget, Security, TargetError, write_config
from bench.targets.packages import Package
from bench.wire.credentials import Credentials

#: redis.conf for a benchmark (see redis.conf's own comments).
REDIS_CONFIG = """\
# written by the chatbench harness for a loopback fan-out benchmark
bind {host}
port {port}
protected-mode no
# the log goes to stderr, which the harness keeps
logfile /dev/stderr
# no persistence: a benchmark's messages are not data (RDB snapshots and the AOF
# would fork and write during the run)
save ""
appendonly no
# no pub/sub output-buffer limit: Redis's default (32mb hard, 8mb for 60 s)
# disconnects a subscriber that falls behind, which a benchmark must see as
# latency, not as a dropped client (put it back with --server-arg to test that)
client-output-buffer-limit pubsub 0 0 0
# room for every harness connection (capped by the open-files limit)
maxclients 100000
# a deep accept queue: the swarm opens hundreds of connections at once
tcp-backlog 4096
"""

#: nats-server config for a benchmark (see nats-server's configuration docs).
NATS_CONFIG = """\
# written by the chatbench harness for a loopback fan-out benchmark
listen: "{host}:{port}"
# a subscriber may fall 1 GiB behind before it is cut off as a slow consumer
# (default 64 MiB) ...
max_pending: 1GB
# ... and a write to it may block 60 s (default 10 s)
write_deadline: "60s"
# the server pings idle clients every 2 min by default; the harness answers, but a
# long run need not pay for it
ping_interval: "10m"
max_connections: 100000
"""

#: mosquitto.conf for a benchmark (see mosquitto.conf(5)).
MOSQUITTO_CONFIG = """\
# written by the chatbench harness for a loopback fan-out benchmark
listener {port} {host}
allow_anonymous true
# no persistence: nothing is written to disk during a run
persistence false
# Nagle off: without it every small PUBLISH to a subscriber may wait for an ACK
set_tcp_nodelay true
# no limit on connections, on QoS 1/2 messages in flight or queued per client
max_connections -1
max_inflight_messages 0
max_queued_messages 0
# the log goes to stderr, which the harness keeps; one line per connection is
# too many at 1,000 clients
log_dest stderr
log_type error
log_type warning
log_type notice
connection_messages false
"""

#: Redis's server binary and its Debian package (the broker target, and the cluster's backplane).
REDIS_SERVER = Package("redis-server", debian="redis-server")

#: Fault lines a run document keeps (the first ones: the rest are alike).
FAULT_LINES_KEPT = 20
#: Characters kept of one (Redis logs the whole client description).
FAULT_LINE_CHARS = 240


def shorten(line: str) -> str:
    """A log line cut to :data:`FAULT_LINE_CHARS`, keeping its start (the time)
    and its end (Redis puts the reason last)."""
    if len(line) <= FAULT_LINE_CHARS:
        return line
    half = FAULT_LINE_CHARS // 2
    return f"{line[:half]} ... {line[-half:]}"


class BrokerTarget(ProcessTarget):
    """A broker from a Debian package with a config file the harness writes.
    Subclasses give the binary and its package, the config and the command."""

    #: The binary and the Debian package it comes from.
    requires = Package("broker", debian="broker")
    config_template = ""
    config_file = ""
    #: Argument that makes the binary print its version (on stdout or stderr).
    version_args: tuple[str, ...] = ("--version",)
    #: Log text of the broker's own mechanisms for cutting clients off or
    #: refusing them: lines with any are the run's ``target.faults_logged``.
    fault_markers: tuple[str, ...] = ()
    #: The settings of the generated config that keep the broker from
    #: throttling or cutting off clients (the comparison's "flood control").
    flood_control = ""

    def __init__(self, server_args: Sequence[str] = (), host: str = "127.0.0.1", security: Security = PLAIN) -> None:
        binary = self.requires.find()
        if binary is None:
            raise TargetError(self.requires.missing())
        super().__init__(host)
        self.binary = binary
        self.extra_config = list(server_args)
        self.security = security
        self.certificate = certs.issue(self.kind) if security.tls else None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self.config_text = ""

    @property
    def accounts(self) -> list[Credentials]:
        """The logins it lets in, each user once (the last password given wins)."""
        if self.security.logins is None:
            return []
        return list({a.user: a for a in self.security.logins.accounts}.values())

    def security_config(self, port: int, directory: Path) -> str:
        """Config lines for TLS and logins (written after the template, so they
        win), with any file they need written to ``directory``."""
        return ""

    @property
    def config_path(self) -> str:
        return str(Path(self._dir.name) / self.config_file) if self._dir is not None else self.config_file

    def prepare(self, port: int) -> None:
        self.cleanup()
        extra = "".join(f"{line}\n" for line in self.extra_config)
        self._dir = write_config(f"chatbench-{self.kind}-", self.config_file, "")
        secured = self.security_config(port, Path(self._dir.name))
        self.config_text = (
            self.config_template.format(host=self.host, port=port)
            + (f"# --tls and logins\n{secured}" if secured else "")
            + (f"# --server-arg\n{extra}" if extra else "")
        )
        Path(self.config_path).write_text(self.config_text)

    def cleanup(self) -> None:
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def version(self) -> str | None:
        try:
            out = subprocess.run(
                [self.binary, *self.version_args], capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL
            )
        except (OSError, subprocess.SubprocessError):
            return None
        text = (out.stdout or out.stderr).strip()
        return text.splitlines()[0].strip() if text else None

    def describe(self) -> TargetInfo:
        doc = super().describe()
        doc["command"] = [self.requires.name, *self.command(self.port)[1:]]
        doc["command"] = [a if a != self.config_path else self.config_file for a in doc["command"]]
        doc["version"] = self.version()
        doc["config"] = self.redact(self.config_text).splitlines()
        doc["faults_logged"] = self.faults_logged()
        doc["flood_control"] = self.flood_control + (" (+ --server-arg lines)" if self.extra_config else "")
        return doc

    def redact(self, text: str) -> str:
        """``text`` with every login's password replaced (a result never holds one)."""
        for account in self.accounts:
            text = text.replace(account.password, "***")
        return text

    def faults_logged(self) -> list[str]:
        """The kept log lines in which the broker says it cut a client off or
        refused one (at most :data:`FAULT_LINES_KEPT`, each shortened)."""
        found = [line for line in self.stderr_tail if any(m in line for m in self.fault_markers)]
        return [shorten(line) for line in found[:FAULT_LINES_KEPT]]


class RedisTarget(BrokerTarget):
    """Redis (``redis-server``, Debian package ``redis-server``): pub/sub over RESP2."""

    kind = "redis"
    protocol = "redis"
    label = "redis-server"
    requires = REDIS_SERVER
    config_template = REDIS_CONFIG
    config_file = "redis.conf"
    port_taken_markers = ("Address already in use",)
    fault_markers = ("output buffer limits", "max number of clients")
    flood_control = "none; pub/sub output-buffer limit off, no persistence"

    def command(self, port: int) -> list[str]:
        return [self.binary, self.config_path]

    def security_config(self, port: int, directory: Path) -> str:
        lines = []
        if self.certificate is not None:
            # TLS only: no plaintext port; clients are not asked for certificates
            lines += [
                "port 0",
                f"tls-port {port}",
                f"tls-cert-file {self.certificate.cert_file}",
                f"tls-key-file {self.certificate.key_file}",
                f"tls-ca-cert-file {self.certificate.ca_file}",
                "tls-auth-clients no",
            ]
        if self.accounts:
            # no default user; each login an ACL user with every key, channel and command
            lines.append("user default off")
            lines += [f"user {a.user} on >{a.password} ~* &* +@all" for a in self.accounts]
        return "".join(f"{line}\n" for line in lines)


class NatsTarget(BrokerTarget):
    """NATS (``nats-server``, Debian package ``nats-server``): core pub/sub."""

    kind = "nats"
    protocol = "nats"
    label = "nats-server"
    requires = Package("nats-server", debian="nats-server")
    config_template = NATS_CONFIG
    config_file = "nats.conf"
    fault_markers = ("Slow Consumer", "Maximum Connections Exceeded", "Write Error", "Stale Connection")
    flood_control = "none; max_pending 1 GiB, write_deadline 60 s"
    port_taken_markers = ("address already in use",)
    stop_signal = signal.SIGINT  # nats-server exits with status 1 on SIGTERM, 0 on SIGINT

    def command(self, port: int) -> list[str]:
        return [self.binary, "--config", self.config_path]

    def security_config(self, port: int, directory: Path) -> str:
        text = ""
        if self.certificate is not None:
            # the server sends INFO in plaintext, then the client starts TLS (NATS's default)
            text += (
                f"tls {{\n  cert_file: {json.dumps(self.certificate.cert_file)}\n"
                f"  key_file: {json.dumps(self.certificate.key_file)}\n  timeout: 10\n}}\n"
            )
        if self.accounts:
            users = ", ".join(
                f"{{user: {json.dumps(a.user)}, password: {json.dumps(a.password)}}}" for a in self.accounts
            )
            text += f"authorization {{\n  users: [{users}]\n}}\n"
        return text


class MosquittoTarget(BrokerTarget):
    """Eclipse Mosquitto (Debian package ``mosquitto``): MQTT 5 at QoS 0."""

    kind = "mosquitto"
    protocol = "mqtt"
    label = "mosquitto"
    requires = Package("mosquitto", debian="mosquitto")
    config_template = MOSQUITTO_CONFIG
    config_file = "mosquitto.conf"
    fault_markers = ("Out of memory", "exceeded", "disconnected due to")
    flood_control = "none; no persistence, TCP_NODELAY, no connection or queue limits"
    port_taken_markers = ("Address already in use",)
    version_args = ("-h",)

    def command(self, port: int) -> list[str]:
        return [self.binary, "-c", self.config_path]

    def security_config(self, port: int, directory: Path) -> str:
        lines = []
        if self.certificate is not None:  # the listener above speaks TLS
            lines += [f"certfile {self.certificate.cert_file}", f"keyfile {self.certificate.key_file}"]
        if self.accounts:
            lines += ["allow_anonymous false", f"password_file {self.password_file(directory)}"]
        return "".join(f"{line}\n" for line in lines)

    def password_file(self, directory: Path) -> str:
        """Mosquitto's password file for the logins, made by its own ``mosquitto_passwd``."""
        tool = shutil.which("mosquitto_passwd") or str(Path(self.binary).parent / "mosquitto_passwd")
        path = directory / "passwords"
        for i, account in enumerate(self.accounts):
            assert account.user is not None
            argv = [tool, *(["-c"] if i == 0 else []), "-b", str(path), account.user, account.password]
            try:
                subprocess.run(argv, check=True, capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
            except (OSError, subprocess.SubprocessError) as exc:
                raise TargetError(f"cannot write mosquitto's password file with {tool}: {exc}") from None
        os.chmod(path, 0o644)  # mosquitto drops root before it reads it
        return str(path)
