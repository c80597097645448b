"""This project's server (``python -m server``) as a target.

With ``--tls`` it serves the chat protocol on its TLS port only
(``--tls-port``, ``--tls-only``), with a certificate the harness generates
(:mod:`bench.targets.certs`); with logins it runs with an accounts file and
``--accounts-required``, so every client's password is checked (scrypt, as
for any login), and the harness's client names are written to it
(:meth:`EmbeddedTarget.enroll`) before they connect -- the server rereads
the file when it changes.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.results.schema import TargetInfo
from bench.targets import certs
from bench.targets.base import PLAIN, ProcessTarget, Security, TargetError
from server.accounts import PasswordHash
from server.config import DEFAULT_MAX_ROOMS, DEFAULT_MAX_ROOMS_PER_CLIENT

#: Options the harness chooses for the server it starts.
#: Seconds :meth:`EmbeddedTarget.describe` waits for the server's options
#: line: it is logged right after the listening line, which ends the start,
#: but the harness reads the server's stderr in a thread of its own, and on a
#: loaded machine that thread may not have read it yet.
OPTIONS_WAIT_S = 5.0
#: How often it looks meanwhile.
OPTIONS_POLL_S = 0.01

CHOSEN_OPTIONS = ("--host", "--port", "--tls-port", "--tls-cert", "--tls-key", "--tls-only", "--accounts")


class EmbeddedTarget(ProcessTarget):
    """This project's server as a subprocess."""

    kind = "embedded"
    protocol = "chat"
    label = "embedded server"

    def __init__(self, server_args: Sequence[str] = (), host: str = "127.0.0.1", security: Security = PLAIN) -> None:
        for arg in server_args:
            if arg.split("=")[0] in CHOSEN_OPTIONS:
                raise TargetError(f"{arg.split('=')[0]} is chosen by the harness for an embedded server")
        super().__init__(host)
        self.server_args = list(server_args)
        self.security = security
        self.certificate = certs.issue("embedded") if security.tls else None
        self._accounts_dir: tempfile.TemporaryDirectory[str] | None = None
        self._accounts: dict[str, str] = {}  #: name -> encoded hash
        self._hashes: dict[str, str] = {}  #: password -> one encoded hash (one scrypt per password)
        if security.logins is not None:
            self._accounts_dir = tempfile.TemporaryDirectory(prefix="chatbench-accounts-")
            self._write_accounts()

    @property
    def accounts_file(self) -> str | None:
        return str(Path(self._accounts_dir.name) / "accounts") if self._accounts_dir is not None else None

    def enroll(self, accounts: Sequence[tuple[str, str]]) -> None:
        """Add (name, password) accounts to the server's accounts file."""
        if self._accounts_dir is None:
            return
        for name, password in accounts:
            hashed = self._hashes.get(password)
            if hashed is None:
                hashed = self._hashes[password] = PasswordHash.make(password).encode()
            self._accounts[name] = hashed
        self._write_accounts()

    def _write_accounts(self) -> None:
        path = self.accounts_file
        assert path is not None
        tmp = f"{path}.new"
        with open(tmp, "w", encoding="utf-8") as out:
            out.write("# written by the chatbench harness\n")
            out.writelines(f"{name}:{hashed}\n" for name, hashed in self._accounts.items())
        os.replace(tmp, path)

    def command(self, port: int) -> list[str]:
        # Flood control off: the harness measures fan-out, not the limiter (it would
        # delay a fast sender's lines).  A later --log-level or --rate-limit wins.
        args = ["--log-level", "WARNING", "--rate-limit", "0", *self.security_args(), *self.server_args]
        return [sys.executable, "-m", "server", "--host", self.host, *self.listen_args(port), *args]

    def listen_args(self, port: int) -> list[str]:
        """Where it listens: ``port`` is the one the clients use."""
        if self.certificate is None:
            return ["--port", str(port)]
        return ["--port", "0", "--tls-port", str(port), "--tls-only"]

    def security_args(self) -> list[str]:
        """The certificate and the accounts file, when secured."""
        args: list[str] = []
        if self.certificate is not None:
            args += ["--tls-cert", self.certificate.cert_file, "--tls-key", self.certificate.key_file]
        if self.accounts_file is not None:
            args += ["--accounts", self.accounts_file, "--accounts-required"]
        return args

    def cleanup(self) -> None:
        """Nothing per start: the accounts file outlives a restart (removed with the object)."""

    def refuses_rooms(self, rooms: int, per_client: int) -> str | None:
        return room_refusal(self.server_args, rooms, per_client)

    def describe(self) -> TargetInfo:
        doc = super().describe()
        doc["command"] = ["python", "-m", "server", *self.command(self.port)[3:]]
        doc["server_options"] = list(self.server_args)
        doc["effective_options"] = options = self._effective_options()
        # command() turns flood control off; a later --server-arg may turn it on again.
        rate = options.get("rate_limit", "0")
        doc["flood_control"] = "off (--rate-limit 0)" if float(rate) == 0 else f"--rate-limit {rate}"
        return doc

    def _effective_options(self) -> dict[str, str]:
        """The options line's settings, waiting for the line while the server runs."""
        deadline = time.monotonic() + OPTIONS_WAIT_S
        while True:
            options = effective_options(self.stderr_head)
            proc = self._proc
            if options or proc is None or proc.poll() is not None or time.monotonic() >= deadline:
                return options
            time.sleep(OPTIONS_POLL_S)


#: The server's second start-up line: ``options: name=value ...`` (every setting in force).
OPTIONS_MARK = "options: "


def effective_options(lines: Sequence[str]) -> dict[str, str]:
    """The settings the server says it runs with (its ``options:`` start-up
    line), name -> value as logged; empty if it logged none."""
    for line in lines:
        _, mark, rest = line.partition(OPTIONS_MARK)
        if mark:
            return {name: value for name, _, value in (item.partition("=") for item in rest.split())}
    return {}


def _option(args: Sequence[str], name: str, default: int) -> int:
    """The last value of ``--name N`` / ``--name=N`` among server args (``default`` without one)."""
    value = default
    for i, arg in enumerate(args):
        text = arg.partition("=")[2] if arg.startswith(name + "=") else None
        if arg == name and i + 1 < len(args):
            text = args[i + 1]
        if text is not None:
            try:
                value = int(text)
            except ValueError:
                pass  # the server says what is wrong with it when it starts
    return value


def room_refusal(server_args: Sequence[str], rooms: int, per_client: int) -> str | None:
    """Why our server (with ``server_args``) cannot hold ``rooms`` rooms with
    a client in ``per_client`` of them, or None.  Both limits count the
    lobby, which a client is in while it joins its rooms."""
    most = _option(server_args, "--max-rooms-per-client", DEFAULT_MAX_ROOMS_PER_CLIENT)
    if per_client + 1 > most:
        return (
            f"our server lets a client be in {most} rooms, the lobby included (--max-rooms-per-client); this "
            f"workload puts a client in {per_client}: add --server-arg=--max-rooms-per-client={per_client + 1}"
        )
    total = _option(server_args, "--max-rooms", DEFAULT_MAX_ROOMS)
    if rooms + 1 > total:
        return (
            f"our server holds {total} rooms, the lobby included (--max-rooms); this workload has {rooms}: "
            f"add --server-arg=--max-rooms={rooms + 1}"
        )
    return None
