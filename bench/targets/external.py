"""A server somebody else started (``HOST:PORT``), on this machine only.

With ``--server-pid`` the harness samples that process's CPU and memory (that
process alone), so it first checks that the process is the one listening on
the target's port: a wrong pid would report another process's figures as
the server's.  A pid that does not listen there is refused in one line naming
the pid that does (a process it started, say a wrapper script's server);
where the sockets cannot be seen (not permitted), the run goes on with a
warning in its document (``target.pid_check``) and in the report.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from collections.abc import Sequence

import psutil

from bench import wire
from bench.results.schema import TargetInfo
from bench.targets.base import TargetError, can_connect


class ExternalTarget:
    """A server already running on this machine (``HOST:PORT``)."""

    kind = "external"
    connect_batch: int | None = None
    max_connections: int | None = None

    def __init__(self, host: str, port: int, pid: int | None = None, protocol: str = "chat") -> None:
        check_loopback(host)
        if protocol not in wire.PROTOCOLS:
            raise TargetError(f"unknown protocol {protocol!r} (choose from {', '.join(wire.PROTOCOLS)})")
        self.host = host
        self.port = port
        self._pid = pid
        self.protocol = protocol
        #: why ``pid`` could not be checked (None: checked, or no pid)
        self.pid_warning = check_server_pid(pid, port) if pid is not None else None
        if self.pid_warning is not None:
            print(f"warning: {self.pid_warning}", file=sys.stderr)

    def refuses_rooms(self, rooms: int, per_client: int) -> str | None:
        """Unknown: a limit of its own shows as refused registrations."""
        return None

    @property
    def pid(self) -> int | None:
        return self._pid

    def start(self) -> tuple[str, int]:
        if not can_connect(self.host, self.port, timeout=2.0):
            raise TargetError(f"nothing accepts connections on {self.host}:{self.port}")
        return self.host, self.port

    def stop(self) -> None:
        pass

    def node_addresses(self) -> list[tuple[str, int]] | None:
        return None  # one address

    def enroll(self, accounts: Sequence[tuple[str, str]]) -> None:
        """Nothing: somebody else's server has the accounts it has."""

    def describe(self) -> TargetInfo:
        info: TargetInfo = {
            "kind": self.kind,
            "protocol": self.protocol,
            "address": f"{self.host}:{self.port}",
            "pid": self._pid,
        }
        if self.pid_warning is not None:
            info["pid_check"] = self.pid_warning
        return info


def _listens(proc: psutil.Process, port: int) -> bool:
    return any(
        c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in proc.net_connections(kind="inet")
    )


def _name(proc: psutil.Process) -> str:
    try:
        return str(proc.name())
    except psutil.Error:
        return "?"


def listener(port: int) -> psutil.Process | None:
    """The process listening on ``port`` (None when none can be seen)."""
    try:
        connections = psutil.net_connections(kind="inet")
    except psutil.AccessDenied:
        return None
    for c in connections:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid is not None:
            try:
                return psutil.Process(c.pid)
            except psutil.NoSuchProcess:
                continue
    return None


def check_server_pid(pid: int, port: int) -> str | None:
    """None when process ``pid`` listens on ``port`` (the sampler reads that
    process alone); a warning when its sockets cannot be seen; TargetError
    (one line, naming the process that does listen there, a process ``pid``
    started or another) when it does not."""
    try:
        proc = psutil.Process(pid)
        if _listens(proc, port):
            return None
    except psutil.NoSuchProcess:
        raise TargetError(f"--server-pid {pid}: there is no such process") from None
    except psutil.AccessDenied:
        return (
            f"could not check that --server-pid {pid} ({_name(proc)}) listens on port {port} (not permitted to "
            "see its sockets): the server CPU and memory figures are that process's, whatever it is"
        )
    owner = listener(port)
    if owner is None:
        raise TargetError(f"--server-pid {pid} ({_name(proc)}) does not listen on port {port}")
    try:
        started = owner.pid in {child.pid for child in proc.children(recursive=True)}
    except psutil.Error:
        started = False
    whose = f", a process {pid} started," if started else ""
    raise TargetError(
        f"--server-pid {pid} ({_name(proc)}) does not listen on port {port}; pid {owner.pid} "
        f"({_name(owner)}){whose} does: pass --server-pid {owner.pid}, whose CPU and memory are the server's"
    )


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
