"""This project's server (``python -m server``) as a target."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from bench.results.schema import TargetInfo
from bench.targets.base import ProcessTarget, TargetError
from server.config import DEFAULT_MAX_ROOMS, DEFAULT_MAX_ROOMS_PER_CLIENT


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

    def refuses_rooms(self, rooms: int, per_client: int) -> str | None:
        return room_refusal(self.server_args, rooms, per_client)

    def describe(self) -> TargetInfo:
        doc = super().describe()
        doc["command"] = ["python", "-m", "server", *self.command(self.port)[3:]]
        doc["server_options"] = list(self.server_args)
        doc["effective_options"] = options = effective_options(self.stderr_head)
        # command() turns flood control off; a later --server-arg may turn it on again.
        rate = options.get("rate_limit", "0")
        doc["flood_control"] = "off (--rate-limit 0)" if float(rate) == 0 else f"--rate-limit {rate}"
        return doc


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
