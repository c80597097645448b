"""A server somebody else started (``HOST:PORT``), on this machine only."""

from __future__ import annotations

import ipaddress
import socket

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

    def describe(self) -> TargetInfo:
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
